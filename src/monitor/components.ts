/**
 * DOM pieces of the Monitor panel (plain functions from state to elements, like the Deploy panel's).
 * Every key number carries `data-testid` and its raw value in `data-value`, so a test can compare the
 * panel with the API answer it came from.
 */

import { Deployment, JobDetail, MonitorAlert, MonitorEvent, MonitorSeries, MonitorSummary } from '../common/api';
import { button, h } from '../common/dom';
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

/** A key number: label, shown text, raw value in data-value (empty when there is none). */
export function stat(testid: string, label: string, text: string, value: number | null | undefined, title = '', extra: Record<string, string> = {}): HTMLElement {
  const attrs: Record<string, string> = {
    class: 'jp-aidevops-stat-value',
    'data-testid': testid,
    'data-value': typeof value === 'number' && Number.isFinite(value) ? String(value) : '',
    ...extra
  };
  return h('div', { class: 'jp-aidevops-stat', title }, h('div', { class: 'jp-aidevops-stat-label' }, label), h('div', attrs, text));
}

/** The latest bucket's request rate of the series (the bucket ends now). */
export function currentRate(series: MonitorSeries | null): number | null {
  const rate = series?.requests?.rate ?? [];
  return rate.length ? rate[rate.length - 1] : null;
}

export function renderHeader(deployments: Deployment[], selected: string | null, busy: boolean, actions: IMonitorActions): HTMLElement {
  const select = h('select', { class: 'jp-mod-styled jp-aidevops-monitor-select', 'data-testid': 'monitor-deployment', 'data-keep': 'deployment', title: 'The deployment to monitor' });
  for (const d of deployments) {
    const option = h('option', { value: d.name }, `${d.name} (${d.model}${d.active_version ? ' v' + d.active_version : ''}, ${d.state})`);
    // The attribute as well as the property: replaceKeepingState compares attributes to tell a changed header.
    option.defaultSelected = option.selected = d.name === selected;
    select.append(option);
  }
  select.disabled = !deployments.length;
  select.addEventListener('change', () => actions.select(select.value));
  const refresh = button('Refresh', 'jp-aidevops-refresh', () => actions.refresh(), 'Fetch now');
  const dep = deployments.find(d => d.name === selected);
  const retrain = button(
    'Retrain now',
    'jp-mod-accept jp-aidevops-retrain',
    () => actions.retrain(),
    busy ? 'A retraining started here is still running' : dep ? `Retrain ${dep.model} on ${dep.name}'s labelled live traffic plus the original data` : 'Pick a deployment',
    busy || !dep
  );
  retrain.dataset.testid = 'monitor-retrain';
  return h(
    'div',
    { class: 'jp-aidevops-header' },
    h('h2', {}, 'Monitor'),
    h('label', { class: 'jp-aidevops-monitor-pick' }, 'Deployment ', select),
    h('span', { class: 'jp-aidevops-spacer' }),
    refresh,
    retrain
  );
}

export function renderStatus(error: string | null, loaded: boolean, deployments: Deployment[], dep: Deployment | undefined, summary: MonitorSummary | null): HTMLElement {
  const box = h('div', { class: 'jp-aidevops-status' });
  if (error) {
    box.append(h('div', { class: 'jp-aidevops-error', role: 'alert' }, error));
  }
  if (!loaded) {
    box.append(h('p', { class: 'jp-aidevops-empty' }, 'Loading…'));
  } else if (!deployments.length) {
    box.append(h('p', { class: 'jp-aidevops-empty' }, 'No deployments yet: deploy a model from the Deploy panel (or `aidevops deploy`) to monitor it.'));
  } else if (dep && !isLive(dep)) {
    box.append(h('p', { class: 'jp-aidevops-empty' }, `${dep.name} is ${dep.state}: live charts need it running; its alerts and events are below.`));
  } else if (summary && summary.status !== 'ok') {
    box.append(h('p', { class: 'jp-aidevops-empty', 'data-testid': 'monitor-state' }, `Monitor: ${summary.status}${summary.status === 'starting' ? ' (the first pass comes within seconds)' : ''}.`));
  }
  for (const note of summary?.notes ?? []) {
    box.append(h('p', { class: 'jp-aidevops-muted' }, note));
  }
  return box;
}

/** The key numbers of the latest monitor pass (and the latest request rate of the series). */
export function renderNumbers(summary: MonitorSummary | null, series: MonitorSeries | null): HTMLElement {
  const req = summary?.requests ?? null;
  const q = summary?.quality ?? null;
  const drift = summary?.drift ?? null;
  const rate = currentRate(series);
  const acc = q && typeof q.accuracy === 'number' ? q.accuracy : null;
  const accText = acc === null ? (q ? q.status : '—') : `${acc.toFixed(3)} [${fixed(q?.accuracy_lower, 3)}, ${fixed(q?.accuracy_upper, 3)}]`;
  const drifted = drift ? drift.drifted.length : null;
  const bucket = series?.requests?.bucket_s;
  return h(
    'div',
    { class: 'jp-aidevops-stats' },
    stat('monitor-rate', 'requests/s', fixed(rate, 1), rate, bucket ? `over the last ${Math.round(bucket)} s` : ''),
    stat('monitor-p50', 'p50 latency', fixed(req?.latency_p50_ms, 1, ' ms'), req?.latency_p50_ms, 'over the monitor window'),
    stat('monitor-p95', 'p95 latency', fixed(req?.latency_p95_ms, 1, ' ms'), req?.latency_p95_ms, 'over the monitor window'),
    stat('monitor-p99', 'p99 latency', fixed(req?.latency_p99_ms, 1, ' ms'), req?.latency_p99_ms, 'over the monitor window'),
    stat('monitor-error-rate', 'error rate', req && req.error_rate !== null ? fixed(req.error_rate * 100, 2, ' %') : '—', req?.error_rate,
      req ? `${req.errors} of ${req.requests} requests failed` : ''),
    stat('monitor-accuracy', 'live accuracy', accText, acc, q ? `${q.n ?? 0} labelled rows` : '', {
      'data-lower': String(q?.accuracy_lower ?? ''),
      'data-upper': String(q?.accuracy_upper ?? '')
    }),
    stat('monitor-logged-rows', 'logged rows', summary?.logged_rows === undefined ? '—' : String(summary.logged_rows), summary?.logged_rows,
      summary?.window_rows ? `window of ${summary.window_rows} rows; ${summary.completed_windows ?? 0} completed` : ''),
    stat('monitor-drifted', 'drifted features', drift ? `${drifted} of ${drift.features.length}` : '—', drifted, drift ? drift.drifted.join(', ') : '', {
      'data-features': drift ? drift.drifted.join(',') : ''
    }),
    stat('monitor-windows', 'windows', summary?.completed_windows === undefined ? '—' : String(summary.completed_windows), summary?.completed_windows,
      'completed blocks of window rows (rules advance once per block)')
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

export function renderAlerts(alerts: MonitorAlert[], now: number): HTMLElement {
  if (!alerts.length) {
    return h('p', { class: 'jp-aidevops-empty', 'data-testid': 'monitor-no-alerts' }, 'No alert rules have been evaluated yet.');
  }
  const body = h('tbody');
  const order = (a: MonitorAlert) => (a.state === 'firing' ? 0 : a.state === 'resolved' ? 1 : 2);
  for (const a of alerts.slice().sort((x, y) => order(x) - order(y))) {
    body.append(
      h(
        'tr',
        { class: `jp-aidevops-alert jp-mod-${a.state}`, 'data-rule': a.rule, 'data-state': a.state, 'data-since': String(a.since ?? '') },
        h('td', {}, h('span', { class: `jp-aidevops-badge jp-aidevops-alert-state jp-mod-${a.state}` }, a.state)),
        h('td', { class: 'jp-aidevops-alert-rule' }, a.rule),
        h('td', { class: 'jp-aidevops-alert-condition' }, a.metric ? `${a.metric} ${a.op ?? ''} ${a.threshold ?? ''}` : ''),
        h('td', { class: 'jp-aidevops-alert-since', title: when(a.since) }, ago(a.since, now)),
        h('td', { class: 'jp-aidevops-alert-value', 'data-value': String(a.value ?? '') }, value(a.value)),
        h('td', { class: 'jp-aidevops-alert-features', title: (a.features ?? []).join(', '), 'data-features': (a.features ?? []).join(',') }, features(a.features)),
        h('td', {}, a.action ?? '')
      )
    );
  }
  return h(
    'table',
    { class: 'jp-aidevops-table jp-aidevops-alerts', 'data-testid': 'monitor-alerts' },
    h('thead', {}, h('tr', {}, h('th', {}, 'State'), h('th', {}, 'Rule'), h('th', {}, 'Condition'), h('th', {}, 'Since'), h('th', {}, 'Value'), h('th', {}, 'Features'), h('th', {}, 'Action'))),
    body
  );
}

/** Events, newest first (at most `max`). */
export function renderEvents(events: MonitorEvent[], now: number, max = 12): HTMLElement {
  if (!events.length) {
    return h('p', { class: 'jp-aidevops-empty' }, 'No alert has fired or resolved yet.');
  }
  const list = h('ul', { class: 'jp-aidevops-events', 'data-testid': 'monitor-events' });
  for (const e of events.slice(0, max)) {
    list.append(
      h(
        'li',
        { class: `jp-aidevops-event jp-mod-${e.event}`, 'data-event-id': String(e.id), 'data-rule': e.rule, 'data-event': e.event },
        h('span', { class: 'jp-aidevops-event-when', title: when(e.at) }, ago(e.at, now)),
        ' ',
        h('strong', {}, `${e.rule} ${e.event}`),
        e.version ? ` on v${e.version}` : '',
        ` (${e.metric ?? 'value'} ${value(e.value)}${e.threshold !== null && e.threshold !== undefined ? ' vs ' + value(e.threshold) : ''})`,
        e.handled_by ? h('span', { class: 'jp-aidevops-muted' }, ` → ${e.handled_by}`) : null,
        e.message ? h('div', { class: 'jp-aidevops-muted' }, e.message) : null
      )
    );
  }
  return list;
}

/** The retraining started from the panel: status, log tail, and the run it produced once it ended. */
export function renderJob(job: JobDetail | null, error: string | null, starting: boolean): HTMLElement {
  const box = h('div', { class: 'jp-aidevops-job-box' });
  if (error) {
    box.append(h('div', { class: 'jp-aidevops-error', role: 'alert', 'data-testid': 'monitor-job-error' }, error));
  }
  if (starting && !job) {
    box.append(h('div', { class: 'jp-aidevops-progress', role: 'status' }, h('span', { class: 'jp-aidevops-spinner' }), 'Starting a retraining…'));
  }
  if (!job) {
    return box;
  }
  const running = job.status === 'running';
  const runId = runIdOf(job);
  const cls = running ? 'jp-mod-unknown' : job.status === 'succeeded' ? 'jp-mod-passed' : 'jp-mod-failed';
  const head = h(
    'div',
    { class: 'jp-aidevops-job-head' },
    running ? h('span', { class: 'jp-aidevops-spinner' }) : null,
    `Retraining job ${job.id} `,
    h('span', { class: `jp-aidevops-badge ${cls}`, 'data-testid': 'monitor-job-status' }, job.status),
    job.exit_code !== null && job.exit_code !== undefined && !running ? ` (exit ${job.exit_code})` : ''
  );
  const section = h(
    'section',
    { class: 'jp-aidevops-job', 'data-testid': 'monitor-job', 'data-job-id': job.id, 'data-status': job.status, 'data-run-id': runId ?? '' },
    head
  );
  if (runId) {
    section.append(
      h('div', { class: 'jp-aidevops-job-run' }, running ? 'pipeline run ' : 'produced pipeline run ', h('code', { 'data-testid': 'monitor-job-run', 'data-run-id': runId }, runId))
    );
  }
  if (!running && job.message) {
    section.append(h('div', { class: 'jp-aidevops-job-message', 'data-testid': 'monitor-job-message' }, job.message));
  }
  const tail = job.log_tail ?? [];
  if (tail.length) {
    section.append(h('pre', { class: 'jp-aidevops-job-log', 'data-testid': 'monitor-job-log' }, tail.join('\n')));
  }
  box.append(section);
  return box;
}
