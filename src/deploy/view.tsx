/**
 * The Deploy panel's view in React (JupyterLab's own UI stack: the panel hosts it in a ReactWidget and
 * re-renders it on every model change through UseSignal). React reconciles instead of rebuilding, so
 * what the user does between polls stays: an opened "Try it", a closed History, scroll and focus.
 *
 * The DOM (classes, data-* attributes, roles) is the contract the browser tests read; keep it stable.
 */

import * as React from 'react';

import { AwaitingApproval, Deployment, HistoryEntry, ModelVersion, RegisteredModel } from '../common/api';
import { Button } from '../common/button';
import { PanelHeader } from '../common/header';
import { EmptyList, ErrorAlert, StatusBox } from '../common/status';
import { TableHead } from '../common/table';
import { IActions, IViewState, keyMetrics, liveDeploymentOf, pct, preferredAlias } from './components';

/** The whole panel body. */
export function DeployView(props: { state: IViewState; actions: IActions }): React.ReactElement {
  const { state } = props;
  const section: ISectionProps = { state, actions: props.actions, idle: state.busy === null };
  return (
    <div className="jp-aidevops-body">
      <PanelHeader
        title="Deploy"
        refresh={() => props.actions.refresh()}
        refreshTitle="Reload models and deployments now"
      />
      <StatusBox className="jp-aidevops-status" busy={state.busy} error={state.error} />
      <h3>Deployments</h3>
      <Deployments {...section} />
      <h3>Registered models</h3>
      <Models {...section} />
    </div>
  );
}

/** What each section of the panel is drawn from: the state, the actions, and whether no change is running. */
interface ISectionProps {
  state: IViewState;
  actions: IActions;
  idle: boolean;
}

/**
 * A gate's verdict: its badge (the reasons in its tooltip) and, beside it, the gate's own comparison, on
 * the rows it names.
 */
function GateVerdict(props: {
  passed: boolean | null | undefined;
  reasons: string | undefined;
  summary: string | null | undefined;
  comparedOn: string | null | undefined;
  testid?: string;
}): React.ReactElement {
  const [label, cls] =
    props.passed === true
      ? ['gate passed', 'jp-mod-passed']
      : props.passed === false
        ? ['gate failed', 'jp-mod-failed']
        : ['not gated', 'jp-mod-unknown'];
  return (
    <>
      <span className={`jp-aidevops-badge jp-aidevops-gate ${cls}`} title={props.reasons}>
        {label}
      </span>
      {props.summary ? (
        <div
          className="jp-aidevops-gate-summary"
          data-testid={props.testid}
          title={props.comparedOn ? `compared on ${props.comparedOn}` : undefined}
        >
          {props.summary}
        </div>
      ) : null}
    </>
  );
}

/**
 * The gate cell: the badge and, beside it, the gate's own comparison ("accuracy 0.9543 vs v1 0.9600 on
 * 350 rows"): both models scored on the same rows, which the version's own metrics column is not.
 */
export function GateCell(props: { version: ModelVersion }): React.ReactElement {
  const v = props.version;
  return (
    <td className="jp-aidevops-gate-cell" data-label="Gate">
      <GateVerdict
        passed={v.gate_passed}
        reasons={v.gate_reasons || undefined}
        summary={v.gate_summary ?? v.gate_comparison?.summary ?? null}
        comparedOn={v.gate_comparison?.compared_on}
        testid="gate-summary"
      />
    </td>
  );
}

function Models(props: ISectionProps): React.ReactElement {
  const { models, deployments, loaded } = props.state;
  if (!models.length) {
    return (
      <EmptyList loaded={loaded} empty="No registered models yet: run a pipeline (`aidevops run`) to register one." />
    );
  }
  return (
    <div className="jp-aidevops-models">
      {models.map(m => (
        <Model
          key={m.name}
          model={m}
          live={liveDeploymentOf(m.name, deployments)}
          actions={props.actions}
          idle={props.idle}
        />
      ))}
    </div>
  );
}

function Model(props: {
  model: RegisteredModel;
  live: Deployment | undefined;
  actions: IActions;
  idle: boolean;
}): React.ReactElement {
  const { model } = props;
  return (
    <section className="jp-aidevops-model" data-model={model.name}>
      <h4>{model.name}</h4>
      <table className="jp-aidevops-table jp-aidevops-versions">
        <TableHead columns={['Version', 'Aliases', 'Gate', 'Metrics', 'Produced by', '']} />
        <tbody>
          {model.versions.map(v => (
            <Version
              key={v.version}
              model={model}
              version={v}
              live={props.live}
              actions={props.actions}
              idle={props.idle}
            />
          ))}
        </tbody>
      </table>
    </section>
  );
}

function Lineage(props: { version: ModelVersion; actions: IActions }): React.ReactElement {
  const lineage = props.version.lineage;
  if (!lineage?.pipeline_run_id) {
    return (
      <td className="jp-aidevops-lineage" data-label="Produced by">
        <span className="jp-aidevops-muted">
          {lineage?.source === 'interactive' ? 'an interactive session' : 'unknown'}
        </span>
      </td>
    );
  }
  const runId = lineage.pipeline_run_id;
  return (
    <td className="jp-aidevops-lineage" data-label="Produced by">
      <div
        className="jp-aidevops-run"
        title={`git ${lineage.git_commit ?? '?'}${lineage.git_dirty === 'True' ? ' (dirty)' : ''}`}
      >
        {`${lineage.pipeline ?? 'pipeline'} run ${runId}`}
      </div>
      <div className="jp-aidevops-notebooks">
        <span className="jp-aidevops-muted">notebooks: </span>
        {lineage.notebooks.map(nb =>
          nb.available ? (
            <a
              key={nb.step}
              className="jp-aidevops-notebook-link"
              href="#"
              data-step={nb.step}
              title={`Open the executed ${nb.name} of run ${runId}`}
              onClick={event => {
                event.preventDefault();
                props.actions.openNotebook(runId, nb.step, nb.name);
              }}
            >
              {nb.step}
            </a>
          ) : (
            <span key={nb.step} className="jp-aidevops-notebook-missing" title="This run is not in this workspace">
              {nb.step}
            </span>
          )
        )}
      </div>
    </td>
  );
}

/** A version's row: the model it belongs to, the model's live deployment (if any), the actions. */
interface IVersionProps {
  model: RegisteredModel;
  version: ModelVersion;
  live: Deployment | undefined;
  actions: IActions;
  idle: boolean;
}

function VersionActions(props: IVersionProps): React.ReactElement {
  const { model, version, live, actions, idle } = props;
  let content: React.ReactNode;
  if (!live) {
    content = (
      <Button
        label="Deploy"
        cls="jp-aidevops-deploy"
        onClick={() => actions.deploy(model, version)}
        title={`Serve ${model.name} ${version.aliases.length ? '@' + preferredAlias(version) : 'v' + version.version} on a local server`}
        disabled={!idle}
      />
    );
  } else if (live.active_version === version.version) {
    content = <span className="jp-aidevops-badge jp-aidevops-serving">{`serving in ${live.name}`}</span>;
  } else {
    content = (
      <>
        <Button
          label="Switch"
          cls="jp-aidevops-switch"
          onClick={() => actions.deploy(model, version)}
          title={`Make v${version.version} the active version of ${live.name}`}
          disabled={!idle}
        />
        {!live.canary_version ? (
          <Button
            label="Canary…"
            cls="jp-aidevops-canary"
            onClick={() => actions.canary(live, version)}
            title={`Send a share of ${live.name}'s traffic to v${version.version}`}
            disabled={!idle}
          />
        ) : live.canary_version === version.version ? (
          <span className="jp-aidevops-badge jp-aidevops-canary-badge">{`canary ${pct(live.canary_share)}`}</span>
        ) : null}
      </>
    );
  }
  return <td className="jp-aidevops-actions">{content}</td>;
}

function Version(props: IVersionProps): React.ReactElement {
  const { version } = props;
  return (
    <tr className="jp-aidevops-version" data-version={version.version}>
      <td className="jp-aidevops-version-number" data-label="Version">{`v${version.version}`}</td>
      <td data-label="Aliases">
        {version.aliases.map(a => (
          <span key={a} className={`jp-aidevops-badge jp-aidevops-alias jp-mod-${a}`}>
            {a}
          </span>
        ))}
      </td>
      <GateCell version={version} />
      <td className="jp-aidevops-metrics" data-label="Metrics">
        {keyMetrics(version.metrics || {}).map(([k, v]) => (
          <span key={k} className="jp-aidevops-metric" title={k}>{`${k} ${v.toFixed(4)}`}</span>
        ))}
      </td>
      <Lineage version={version} actions={props.actions} />
      <VersionActions {...props} />
    </tr>
  );
}

function Deployments(props: ISectionProps): React.ReactElement {
  const { deployments, loaded } = props.state;
  if (!deployments.length) {
    return <EmptyList loaded={loaded} empty="No deployments yet: deploy a registered version below." />;
  }
  return (
    <div className="jp-aidevops-deployments">
      {deployments.map(d => (
        <DeploymentCard key={d.name} deployment={d} actions={props.actions} idle={props.idle} />
      ))}
    </div>
  );
}

function DeploymentCard(props: { deployment: Deployment; actions: IActions; idle: boolean }): React.ReactElement {
  const { deployment: d, actions, idle } = props;
  const live = d.state === 'running' || d.state === 'restarting';
  const health = d.health === 'healthy' ? 'jp-mod-passed' : d.health === 'stopped' ? 'jp-mod-unknown' : 'jp-mod-failed';
  return (
    <section className="jp-aidevops-deployment" data-deployment={d.name}>
      <h4>
        {d.name}{' '}
        <span className={`jp-aidevops-badge jp-aidevops-health ${health}`} title={d.error ?? ''}>
          {d.health}
        </span>
      </h4>
      <ErrorAlert error={d.error} />
      <dl className="jp-aidevops-facts">
        <dt>Serves</dt>
        <dd>{d.ref}</dd>
        <dt>Endpoint</dt>
        <dd>{d.url ? <code className="jp-aidevops-endpoint">{d.endpoints.invocations ?? d.url}</code> : '—'}</dd>
        <dt>Active</dt>
        <dd className="jp-aidevops-active">{d.active_version ? `v${d.active_version}` : '—'}</dd>
        <dt>Previous</dt>
        <dd className="jp-aidevops-previous">{d.previous_version ? `v${d.previous_version}` : '—'}</dd>
        <dt>Canary</dt>
        <dd className="jp-aidevops-canary-share">
          {d.canary_version ? `v${d.canary_version} gets ${pct(d.canary_share)} of requests` : '—'}
        </dd>
      </dl>
      {d.awaiting_approval ? <Approval deployment={d} actions={actions} idle={idle} /> : null}
      {/* No `open` prop: React leaves the user's open/closed state alone on every re-render. */}
      {d.example ? (
        <details className="jp-aidevops-example">
          <summary>Try it</summary>
          <pre>{d.example.curl}</pre>
        </details>
      ) : null}
      <div className="jp-aidevops-actions">
        {live && d.canary_version ? (
          <>
            <Button
              label="Promote canary"
              cls="jp-aidevops-promote"
              onClick={() => actions.promote(d)}
              title={`Make v${d.canary_version} the active version`}
              disabled={!idle}
            />
            <Button
              label="Clear canary"
              cls="jp-aidevops-clear-canary"
              onClick={() => actions.clearCanary(d)}
              title={`Send all traffic to v${d.active_version}`}
              disabled={!idle}
            />
          </>
        ) : null}
        {live && d.previous_version ? (
          <Button
            label="Roll back"
            cls="jp-aidevops-rollback"
            onClick={() => actions.rollback(d)}
            title={`Swap back to v${d.previous_version}`}
            disabled={!idle}
          />
        ) : null}
        {live ? (
          <Button
            label="Undeploy"
            cls="jp-aidevops-undeploy"
            onClick={() => actions.undeploy(d)}
            title="Stop the server (the history stays)"
            disabled={!idle}
          />
        ) : null}
      </div>
      <History rows={d.history} />
    </section>
  );
}

/** "2026-11-23 10:00:01" from an ISO 8601 time (the History's format). */
function isoShort(iso: string | null | undefined): string {
  return iso ? iso.replace('T', ' ').slice(0, 19) : '—';
}

/**
 * A retrained version held for a person (`promote: manual`): what the gate found, what started the retraining,
 * how many labelled live rows it learnt and from when; Approve switches to it, Reject drops it.
 */
export function Approval(props: { deployment: Deployment; actions: IActions; idle: boolean }): React.ReactElement {
  const { deployment: d, actions, idle } = props;
  const held = d.awaiting_approval as AwaitingApproval;
  return (
    <section
      className="jp-aidevops-approval"
      data-testid="approval"
      data-version={held.version}
      data-retraining={String(held.retraining)}
    >
      <h5>{`Awaiting approval: v${held.version}`}</h5>
      <dl className="jp-aidevops-facts">
        <dt>Gate</dt>
        <dd className="jp-aidevops-approval-gate">
          <GateVerdict
            passed={held.gate.passed}
            reasons={held.gate.reasons.join('; ') || undefined}
            summary={held.gate.summary}
            comparedOn={held.gate.compared_on}
          />
        </dd>
        <dt>Trigger</dt>
        <dd className="jp-aidevops-approval-trigger">
          {held.rule ? `${held.trigger} (rule ${held.rule})` : held.trigger}
        </dd>
        <dt>Live rows</dt>
        <dd className="jp-aidevops-approval-rows" data-rows={String(held.live_rows)}>
          {held.live_rows
            ? `${held.live_rows} labelled live rows, logged since ${isoShort(held.live_since)}`
            : 'none: trained on the original data only'}
        </dd>
        <dt>Retraining</dt>
        <dd>
          {`#${held.retraining}`}
          {held.pipeline_run_id ? `, pipeline run ${held.pipeline_run_id}` : ''}
          {held.from_version ? `, from v${held.from_version}` : ''}
          {held.since ? `; waiting since ${isoShort(held.since)}` : ''}
        </dd>
      </dl>
      <div className="jp-aidevops-actions">
        <Button
          label="Approve"
          cls="jp-mod-accept jp-aidevops-approve"
          onClick={() => actions.approve(d)}
          title={`Switch ${d.name} to v${held.version} and make it champion`}
          disabled={!idle}
        />
        <Button
          label="Reject"
          cls="jp-mod-warn jp-aidevops-reject"
          onClick={() => actions.reject(d)}
          title={`Drop v${held.version}; ${d.name} keeps serving v${d.active_version}`}
          disabled={!idle}
        />
      </div>
    </section>
  );
}

/** Open at first; afterwards the user's choice, which React keeps (it sets `open` only on mount). */
export function History(props: { rows: HistoryEntry[] }): React.ReactElement {
  const ref = React.useRef<HTMLDetailsElement>(null);
  React.useEffect(() => {
    if (ref.current) {
      ref.current.open = true;
    }
  }, []);
  return (
    <details className="jp-aidevops-history-box" ref={ref}>
      <summary>{`History (${props.rows.length})`}</summary>
      <div className="jp-aidevops-scroll-x">
        <table className="jp-aidevops-table jp-aidevops-history">
          <TableHead columns={['When', 'Change', 'Versions', 'By', 'Why']} />
          <tbody>
            {props.rows.map((row, i) => (
              <tr
                key={`${row.ts}-${row.operation}-${i}`}
                className={`jp-aidevops-history-row ${row.ok ? '' : 'jp-mod-refused'}`}
                data-operation={row.operation}
              >
                <td data-label="When">{row.when.replace('T', ' ').slice(0, 19)}</td>
                <td data-label="Change">{row.operation + (row.ok ? '' : ' (refused)')}</td>
                <td data-label="Versions">{`${row.from_version ? 'v' + row.from_version : '—'} → ${row.to_version ? 'v' + row.to_version : '—'}`}</td>
                <td className="jp-aidevops-history-actor" data-label="By">
                  {row.actor}
                </td>
                <td className="jp-aidevops-history-reason" data-label="Why" title={row.detail}>
                  {row.reason}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </details>
  );
}
