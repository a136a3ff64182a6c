/**
 * The Monitor panel's React pieces (state in, elements out; ./view puts them together). Every key number
 * carries `data-testid` and its raw value in `data-value`, so a test can compare the panel with the API
 * answer it came from.
 */

import * as React from 'react';

import {
  Accuracy,
  Deployment,
  JobDetail,
  MonitorAlert,
  MonitorEvent,
  MonitorSeries,
  MonitorSummary,
  ShadowSummary
} from '../common/api';
import { Button } from '../common/button';
import { ErrorAlert, Progress } from '../common/status';
import { TableHead } from '../common/table';
import { isLive, runIdOf } from './model';

export interface IMonitorActions {
  select(name: string): void;
  refresh(): void;
  retrain(): void;
}

/** "just now", "42 s ago", "3 min ago", "2 h 5 min ago", "3 d ago" (future times read "just now"). */
export function ago(then: number | null | undefined, now: number): string {
  if (then === null || then === undefined || !Number.isFinite(then)) {
    return '—';
  }
  const s = Math.max(0, Math.round(now - then));
  if (s < 5) {
    return 'just now';
  }
  if (s < 60) {
    return `${s} s ago`;
  }
  const m = Math.floor(s / 60);
  if (m < 60) {
    return `${m} min ago`;
  }
  const hours = Math.floor(m / 60);
  if (hours < 48) {
    return m % 60 ? `${hours} h ${m % 60} min ago` : `${hours} h ago`;
  }
  return `${Math.floor(hours / 24)} d ago`;
}

export function when(epoch: number | null | undefined): string {
  return epoch ? new Date(epoch * 1000).toLocaleString() : '';
}

function fixed(v: number | null | undefined, digits: number, unit = ''): string {
  return typeof v === 'number' && Number.isFinite(v) ? `${v.toFixed(digits)}${unit}` : '—';
}

function raw(v: number | null | undefined): string {
  return typeof v === 'number' && Number.isFinite(v) ? String(v) : '';
}

/** A key number: label, shown text, raw value in data-value (empty when there is none). */
export function Stat(props: {
  testid: string;
  label: string;
  text: string;
  value: number | null | undefined;
  title?: string;
  extra?: Record<string, string>;
}): React.ReactElement {
  return (
    <div className="jp-aidevops-stat" title={props.title || undefined}>
      <div className="jp-aidevops-stat-label">{props.label}</div>
      <div
        className="jp-aidevops-stat-value"
        data-testid={props.testid}
        data-value={raw(props.value)}
        {...(props.extra ?? {})}
      >
        {props.text}
      </div>
    </div>
  );
}

/** The latest bucket's request rate of the series (the bucket ends now). */
export function currentRate(series: MonitorSeries | null): number | null {
  const rate = series?.requests?.rate ?? [];
  return rate.length ? rate[rate.length - 1] : null;
}

export function Header(props: {
  deployments: Deployment[];
  selected: string | null;
  busy: boolean;
  actions: IMonitorActions;
}): React.ReactElement {
  const { deployments, selected, busy, actions } = props;
  const dep = deployments.find(d => d.name === selected);
  return (
    <div className="jp-aidevops-header">
      <h2>Monitor</h2>
      <label className="jp-aidevops-monitor-pick">
        {'Deployment '}
        <select
          className="jp-mod-styled jp-aidevops-monitor-select"
          data-testid="monitor-deployment"
          title="The deployment to monitor"
          value={selected ?? ''}
          disabled={!deployments.length}
          onChange={event => actions.select(event.currentTarget.value)}
        >
          {deployments.map(d => (
            <option key={d.name} value={d.name}>
              {`${d.name} (${d.model}${d.active_version ? ' v' + d.active_version : ''}, ${d.state})`}
            </option>
          ))}
        </select>
      </label>
      <span className="jp-aidevops-spacer" />
      <Button label="Refresh" cls="jp-aidevops-refresh" onClick={() => actions.refresh()} title="Fetch now" />
      <Button
        label="Retrain now"
        cls="jp-mod-accept jp-aidevops-retrain"
        testid="monitor-retrain"
        onClick={() => actions.retrain()}
        title={
          busy
            ? 'A retraining started here is still running'
            : dep
              ? `Retrain ${dep.model} on ${dep.name}'s labelled live traffic plus the original data`
              : 'Pick a deployment'
        }
        disabled={busy || !dep}
      />
    </div>
  );
}

export function Status(props: {
  error: string | null;
  loaded: boolean;
  deployments: Deployment[];
  deployment: Deployment | undefined;
  summary: MonitorSummary | null;
}): React.ReactElement {
  const { error, loaded, deployments, deployment: dep, summary } = props;
  let state: React.ReactNode = null;
  if (!loaded) {
    state = <p className="jp-aidevops-empty">Loading…</p>;
  } else if (!deployments.length) {
    state = (
      <p className="jp-aidevops-empty">
        No deployments yet: deploy a model from the Deploy panel (or `aidevops deploy`) to monitor it.
      </p>
    );
  } else if (dep && !isLive(dep)) {
    state = (
      <p className="jp-aidevops-empty">{`${dep.name} is ${dep.state}: live charts need it running; its alerts and events are below.`}</p>
    );
  } else if (summary && summary.status !== 'ok') {
    state = (
      <p className="jp-aidevops-empty" data-testid="monitor-state">
        {`Monitor: ${summary.status}${summary.status === 'starting' ? ' (the first pass comes within seconds)' : ''}.`}
      </p>
    );
  }
  const held = dep?.awaiting_approval;
  return (
    <div className="jp-aidevops-status">
      {held ? (
        <p className="jp-aidevops-awaiting" data-testid="monitor-awaiting" data-version={held.version}>
          {`v${held.version} (retraining #${held.retraining}) awaits approval: approve or reject it in the Deploy panel.`}
        </p>
      ) : null}
      <ErrorAlert error={error} />
      {state}
      {(summary?.notes ?? []).map(note => (
        <p key={note} className="jp-aidevops-muted">
          {note}
        </p>
      ))}
    </div>
  );
}

const LATENCY_PERCENTILES = ['p50', 'p95', 'p99'] as const;

/** The key numbers of the latest monitor pass (and the latest request rate of the series). */
export function Numbers(props: { summary: MonitorSummary | null; series: MonitorSeries | null }): React.ReactElement {
  const { summary, series } = props;
  const req = summary?.requests ?? null;
  const q = summary?.quality ?? null;
  const drift = summary?.drift ?? null;
  const rate = currentRate(series);
  const acc = q && typeof q.accuracy === 'number' ? q.accuracy : null;
  const accText =
    acc === null
      ? q
        ? q.status
        : '—'
      : `${acc.toFixed(3)} [${fixed(q?.accuracy_lower, 3)}, ${fixed(q?.accuracy_upper, 3)}]`;
  const drifted = drift ? drift.drifted.length : null;
  const bucket = series?.requests?.bucket_s;
  return (
    <div className="jp-aidevops-stats">
      <Stat
        testid="monitor-rate"
        label="requests/s"
        text={fixed(rate, 1)}
        value={rate}
        title={bucket ? `over the last ${Math.round(bucket)} s` : ''}
      />
      {LATENCY_PERCENTILES.map(p => {
        const ms = req?.[`latency_${p}_ms`];
        return (
          <Stat
            key={p}
            testid={`monitor-${p}`}
            label={`${p} latency`}
            text={fixed(ms, 1, ' ms')}
            value={ms}
            title="over the monitor window"
          />
        );
      })}
      <Stat
        testid="monitor-error-rate"
        label="error rate"
        text={req && req.error_rate !== null ? fixed(req.error_rate * 100, 2, ' %') : '—'}
        value={req?.error_rate}
        title={req ? `${req.errors} of ${req.requests} requests failed` : ''}
      />
      <Stat
        testid="monitor-accuracy"
        label="live accuracy"
        text={accText}
        value={acc}
        title={q ? `${q.n ?? 0} labelled rows` : ''}
        extra={{ 'data-lower': String(q?.accuracy_lower ?? ''), 'data-upper': String(q?.accuracy_upper ?? '') }}
      />
      <Stat
        testid="monitor-logged-rows"
        label="logged rows"
        text={summary?.logged_rows === undefined ? '—' : String(summary.logged_rows)}
        value={summary?.logged_rows}
        title={
          summary?.window_rows
            ? `window of ${summary.window_rows} rows; ${summary.completed_windows ?? 0} completed`
            : ''
        }
      />
      <Stat
        testid="monitor-drifted"
        label="drifted features"
        text={drift ? `${drifted} of ${drift.features.length}` : '—'}
        value={drifted}
        title={drift ? drift.drifted.join(', ') : ''}
        extra={{ 'data-features': drift ? drift.drifted.join(',') : '' }}
      />
      <Stat
        testid="monitor-windows"
        label="windows"
        text={summary?.completed_windows === undefined ? '—' : String(summary.completed_windows)}
        value={summary?.completed_windows}
        title="completed blocks of window rows (rules advance once per block)"
      />
    </div>
  );
}

function accuracyText(a: Accuracy | null): string {
  return a
    ? `${a.value.toFixed(3)} [${a.low.toFixed(3)}, ${a.high.toFixed(3)}] on ${a.labels} labels`
    : '— (no labels yet)';
}

/**
 * A shadow version's evidence beside the active one's: how often both predict the same on mirrored live
 * requests and, once labels arrive, both accuracies on the same rows with their intervals.
 */
export function Shadow(props: { shadow: ShadowSummary | null | undefined }): React.ReactElement | null {
  const sh = props.shadow;
  if (!sh) {
    return null;
  }
  const agreement = sh.agreement_rate;
  return (
    <section
      className="jp-aidevops-shadow"
      data-testid="monitor-shadow"
      data-version={sh.version}
      data-running={String(sh.running)}
    >
      <h3>{`Shadow: v${sh.version}${sh.running ? '' : ' (stopped)'}`}</h3>
      <div className="jp-aidevops-stats">
        <Stat
          testid="monitor-shadow-agreement"
          label="agreement"
          text={agreement === null ? '—' : `${(agreement * 100).toFixed(1)} %`}
          value={agreement}
          title={`share of ${sh.rows} mirrored rows where v${sh.version} and v${sh.active_version ?? '?'} predict the same`}
        />
        <Stat
          testid="monitor-shadow-active-accuracy"
          label={`v${sh.active_version ?? '?'} (active) accuracy`}
          text={accuracyText(sh.active_accuracy)}
          value={sh.active_accuracy?.value}
        />
        <Stat
          testid="monitor-shadow-accuracy"
          label={`v${sh.version} (shadow) accuracy`}
          text={accuracyText(sh.shadow_accuracy)}
          value={sh.shadow_accuracy?.value}
        />
        <Stat
          testid="monitor-shadow-requests"
          label="mirrored requests"
          text={String(sh.requests)}
          value={sh.requests}
          title={`${sh.errors} failed on the shadow; ${sh.dropped} not mirrored (its queue was full)`}
        />
      </div>
    </section>
  );
}

function features(names: string[] | null | undefined, max = 6): string {
  if (!names || !names.length) {
    return '—';
  }
  return names.length > max ? `${names.slice(0, max).join(', ')} +${names.length - max} more` : names.join(', ');
}

function value(v: number | null | undefined): string {
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    return '—';
  }
  return Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3);
}

const STATE_ORDER: Record<string, number> = { firing: 0, resolved: 1 };

export function Alerts(props: { alerts: MonitorAlert[]; now: number }): React.ReactElement {
  const { alerts, now } = props;
  if (!alerts.length) {
    return (
      <p className="jp-aidevops-empty" data-testid="monitor-no-alerts">
        No alert rules have been evaluated yet.
      </p>
    );
  }
  const order = (a: MonitorAlert) => STATE_ORDER[a.state] ?? 2;
  return (
    <table className="jp-aidevops-table jp-aidevops-alerts" data-testid="monitor-alerts">
      <TableHead columns={['State', 'Rule', 'Condition', 'Since', 'Value', 'Features', 'Action']} />
      <tbody>
        {alerts
          .slice()
          .sort((x, y) => order(x) - order(y))
          .map(a => (
            <tr
              key={a.rule}
              className={`jp-aidevops-alert jp-mod-${a.state}`}
              data-rule={a.rule}
              data-state={a.state}
              data-since={String(a.since ?? '')}
            >
              <td>
                <span className={`jp-aidevops-badge jp-aidevops-alert-state jp-mod-${a.state}`}>{a.state}</span>
              </td>
              <td className="jp-aidevops-alert-rule">{a.rule}</td>
              <td className="jp-aidevops-alert-condition">
                {a.metric ? `${a.metric} ${a.op ?? ''} ${a.threshold ?? ''}` : ''}
              </td>
              <td className="jp-aidevops-alert-since" title={when(a.since)}>
                {ago(a.since, now)}
              </td>
              <td className="jp-aidevops-alert-value" data-value={String(a.value ?? '')}>
                {value(a.value)}
              </td>
              <td
                className="jp-aidevops-alert-features"
                title={(a.features ?? []).join(', ')}
                data-features={(a.features ?? []).join(',')}
              >
                {features(a.features)}
              </td>
              <td>{a.action ?? ''}</td>
            </tr>
          ))}
      </tbody>
    </table>
  );
}

/** Events, newest first (at most `max`). */
export function Events(props: { events: MonitorEvent[]; now: number; max?: number }): React.ReactElement {
  const { events, now, max = 12 } = props;
  if (!events.length) {
    return <p className="jp-aidevops-empty">No alert has fired or resolved yet.</p>;
  }
  return (
    <ul className="jp-aidevops-events" data-testid="monitor-events">
      {events.slice(0, max).map(e => (
        <li
          key={e.id}
          className={`jp-aidevops-event jp-mod-${e.event}`}
          data-event-id={String(e.id)}
          data-rule={e.rule}
          data-event={e.event}
        >
          <span className="jp-aidevops-event-when" title={when(e.at)}>
            {ago(e.at, now)}
          </span>{' '}
          <strong>{`${e.rule} ${e.event}`}</strong>
          {e.version ? ` on v${e.version}` : ''}
          {` (${e.metric ?? 'value'} ${value(e.value)}${e.threshold !== null && e.threshold !== undefined ? ' vs ' + value(e.threshold) : ''})`}
          {e.handled_by ? <span className="jp-aidevops-muted">{` → ${e.handled_by}`}</span> : null}
          {e.message ? <div className="jp-aidevops-muted">{e.message}</div> : null}
        </li>
      ))}
    </ul>
  );
}

/** The log tail of a job, scrolled to its newest line whenever it grows. */
function JobLog(props: { lines: string[] }): React.ReactElement {
  const ref = React.useRef<HTMLPreElement>(null);
  const text = props.lines.join('\n');
  React.useEffect(() => {
    if (ref.current) {
      ref.current.scrollTop = ref.current.scrollHeight;
    }
  }, [text]);
  return (
    <pre className="jp-aidevops-job-log" data-testid="monitor-job-log" ref={ref}>
      {text}
    </pre>
  );
}

/** The retraining started from the panel: status, log tail, and the run it produced once it ended. */
export function Job(props: { job: JobDetail | null; error: string | null; starting: boolean }): React.ReactElement {
  const { job, error, starting } = props;
  const running = job?.status === 'running';
  const runId = runIdOf(job);
  const cls = running ? 'jp-mod-unknown' : job?.status === 'succeeded' ? 'jp-mod-passed' : 'jp-mod-failed';
  const tail = job?.log_tail ?? [];
  return (
    <div className="jp-aidevops-job-box">
      <ErrorAlert error={error} testid="monitor-job-error" />
      {starting && !job ? <Progress>Starting a retraining…</Progress> : null}
      {job ? (
        <section
          className="jp-aidevops-job"
          data-testid="monitor-job"
          data-job-id={job.id}
          data-status={job.status}
          data-run-id={runId ?? ''}
        >
          <div className="jp-aidevops-job-head">
            {running ? <span className="jp-aidevops-spinner" /> : null}
            {`Retraining job ${job.id} `}
            <span className={`jp-aidevops-badge ${cls}`} data-testid="monitor-job-status">
              {job.status}
            </span>
            {job.exit_code !== null && job.exit_code !== undefined && !running ? ` (exit ${job.exit_code})` : ''}
          </div>
          {runId ? (
            <div className="jp-aidevops-job-run">
              {running ? 'pipeline run ' : 'produced pipeline run '}
              <code data-testid="monitor-job-run" data-run-id={runId}>
                {runId}
              </code>
            </div>
          ) : null}
          {!running && job.message ? (
            <div className="jp-aidevops-job-message" data-testid="monitor-job-message">
              {job.message}
            </div>
          ) : null}
          {tail.length ? <JobLog lines={tail} /> : null}
        </section>
      ) : null}
    </div>
  );
}
