/**
 * The Runs panel's view in React (hosted by ReactPanel, re-rendered on every model change). React
 * reconciles instead of rebuilding, so what the user is doing between polls stays: an open step's
 * details and its confirmation, a ticked run, the scroll position.
 *
 * DOM contract (browser tests rely on it): each run row has `data-run-id` and `data-status`; each step
 * chip's label has `data-step` and `data-step-status`; an open step's details have `data-detail-step`;
 * the followed job's box has `data-job-id` and `data-job-status`; each schedule has `data-schedule`.
 */

import * as React from 'react';

import { RunNotebook, RunStep, RunSummary, Schedule } from '../common/api';
import { Button } from '../common/button';
import { PanelHeader } from '../common/header';
import { EmptyList, ErrorAlert, StatusBox } from '../common/status';
import { badgeClass, chipTitle, formatDuration, formatValue, formatWhen, relativeTime, whyLines } from './format';
import { describeJob, failedStep, FollowedJob, IOpenStep, IRunsViewState, runFromBlocked } from './model';

export interface IRunsActions {
  refresh(): void;
  toggleSelected(runId: string): void;
  diff(): void;
  runPipeline(): void;
  rerun(run: RunSummary): void;
  openNotebook(runId: string, step: string, name: string): void;
  dismissJob(): void;
  toggleStep(runId: string, step: string): void;
  askRunFrom(): void;
  cancelRunFrom(): void;
  confirmRunFrom(): void;
}

/** How to add a schedule, for the empty Schedules section. */
export const SCHEDULE_HINT = 'aidevops schedule add PIPELINE --cron "0 3 * * *"';

export function RunsView(props: { state: IRunsViewState; actions: IRunsActions }): React.ReactElement {
  const { state, actions } = props;
  const idle = state.busy === null && !(state.job && state.job.status === 'running');
  const pair = state.selected.length === 2;
  return (
    <div className="jp-aidevops-body jp-aidevops-runs-body">
      <PanelHeader title="Runs" refresh={() => actions.refresh()} refreshTitle="Reload the runs now">
        <Button
          label="Run pipeline…"
          cls="jp-aidevops-runs-start"
          onClick={() => actions.runPipeline()}
          title="Start a pipeline with edited params"
          disabled={!idle}
        />
        <Button
          label="Diff"
          cls="jp-aidevops-runs-diff"
          onClick={() => actions.diff()}
          title={pair ? "Show the two picked runs' notebooks side by side (nbdime)" : 'Tick two runs to diff them'}
          disabled={!pair}
        />
      </PanelHeader>
      {/* Not .jp-aidevops-status: the Deploy panel's tests find theirs page-wide. */}
      <StatusBox className="jp-aidevops-runs-status-box" busy={state.busy} error={state.error} />
      {state.job ? <JobBox job={state.job} actions={actions} /> : null}
      {state.schedules !== null ? (
        <Schedules schedules={state.schedules} error={state.schedulesError} now={state.now} />
      ) : null}
      <Runs state={state} actions={actions} />
    </div>
  );
}

/** ipykernel's warning on every kernel start: nothing a user of the panel can act on. */
const KERNEL_NOISE = /^\[IPKernelApp\] WARNING \| Kernel is running over TCP without encryption/;

/** The followed job: what it runs, its status, the run it made, the newest lines of its output. */
export function JobBox(props: { job: FollowedJob; actions: IRunsActions }): React.ReactElement {
  const { job, actions } = props;
  const running = job.status === 'running';
  const tail = (job.log_tail ?? []).filter(line => !KERNEL_NOISE.test(line));
  const log = React.useRef<HTMLPreElement>(null);
  React.useEffect(() => {
    if (log.current) {
      log.current.scrollTop = log.current.scrollHeight; // the newest lines in view
    }
  });
  return (
    <section className={`jp-aidevops-runs-job jp-mod-${job.status}`} data-job-id={job.id} data-job-status={job.status}>
      <div className="jp-aidevops-runs-job-head">
        {running ? <span className="jp-aidevops-spinner" /> : null}
        <strong className="jp-aidevops-runs-job-what">{describeJob(job)}</strong>
        <span className={`jp-aidevops-badge jp-aidevops-runs-job-status ${badgeClass(job.status)}`}>{job.status}</span>
        {job.run_id ? <span className="jp-aidevops-runs-job-run">run {job.run_id}</span> : null}
        {running ? null : (
          <Button
            label="Dismiss"
            cls="jp-aidevops-runs-job-dismiss"
            onClick={() => actions.dismissJob()}
            title="Hide this job"
          />
        )}
      </div>
      {job.message ? <div className="jp-aidevops-muted">{job.message}</div> : null}
      {tail.length ? (
        <pre className="jp-aidevops-runs-log" ref={log}>
          {tail.join('\n')}
        </pre>
      ) : null}
    </section>
  );
}

/** The schedules with their next and last run; empty: how to add one. */
export function Schedules(props: { schedules: Schedule[]; error: string | null; now: number }): React.ReactElement {
  const { schedules, error, now } = props;
  return (
    <section className="jp-aidevops-runs-schedules">
      <h3>Schedules</h3>
      <ErrorAlert error={error} />
      {schedules.length === 0 && !error ? (
        <p className="jp-aidevops-empty jp-aidevops-runs-schedules-empty">
          No schedules yet. Add one in a terminal: <code>{SCHEDULE_HINT}</code>
        </p>
      ) : null}
      {schedules.map(s => (
        <ScheduleRow key={s.name} schedule={s} now={now} />
      ))}
    </section>
  );
}

function ScheduleRow(props: { schedule: Schedule; now: number }): React.ReactElement {
  const { schedule: s, now } = props;
  const params = Object.entries(s.params ?? {});
  return (
    <div className="jp-aidevops-runs-schedule" data-schedule={s.name} data-last-status={s.last_status ?? 'none'}>
      <div className="jp-aidevops-runs-schedule-head">
        <strong className="jp-aidevops-runs-schedule-name">{s.name}</strong>
        {s.pipeline !== s.name ? <span className="jp-aidevops-runs-pipeline">{s.pipeline}</span> : null}
        <code className="jp-aidevops-runs-schedule-cron" title="cron (UTC)">
          {s.cron}
        </code>
        {s.notify ? (
          <span className="jp-aidevops-muted jp-aidevops-runs-schedule-notify" title={`posts each run to ${s.notify}`}>
            notifies
          </span>
        ) : null}
      </div>
      <div className="jp-aidevops-runs-schedule-times">
        <span
          className="jp-aidevops-runs-schedule-next"
          title={s.next_run ? `next run ${formatWhen(s.next_run)} UTC` : ''}
        >
          {s.next_run ? `next run ${relativeTime(s.next_run, now)}` : 'no next run'}
        </span>
        <span
          className="jp-aidevops-runs-schedule-last"
          title={s.last_run ? `last run ${formatWhen(s.last_run)} UTC${s.last_run_id ? `: ${s.last_run_id}` : ''}` : ''}
        >
          {s.last_run ? `last run ${relativeTime(s.last_run, now)}` : 'not run yet'}
        </span>
        {s.last_status ? (
          <span className={`jp-aidevops-badge jp-aidevops-runs-schedule-status ${badgeClass(s.last_status)}`}>
            {s.last_status}
          </span>
        ) : null}
      </div>
      {params.length ? (
        <div className="jp-aidevops-runs-params">
          {params.map(([k, v]) => (
            <span key={k} className="jp-aidevops-runs-param jp-mod-override" data-param={k}>
              {`${k}=${formatValue(v)}`}
            </span>
          ))}
        </div>
      ) : null}
    </div>
  );
}

function Runs(props: { state: IRunsViewState; actions: IRunsActions }): React.ReactElement {
  const { state, actions } = props;
  if (!state.runs.length) {
    return (
      <EmptyList
        loaded={state.loaded}
        empty='No pipeline runs yet: start one with "Run pipeline…" (or `aidevops run`).'
      />
    );
  }
  return (
    <div className="jp-aidevops-runs-list">
      {state.runs.map(r => (
        <RunRow
          key={r.run_id}
          run={r}
          selected={state.selected.includes(r.run_id)}
          open={state.open && state.open.runId === r.run_id ? state.open : null}
          blocked={runFromBlocked(r, state.busy, state.job)}
          idle={state.busy === null && !(state.job && state.job.status === 'running')}
          actions={actions}
        />
      ))}
    </div>
  );
}

export function RunRow(props: {
  run: RunSummary;
  selected: boolean;
  open: IOpenStep | null;
  blocked: string | null;
  idle: boolean;
  actions: IRunsActions;
}): React.ReactElement {
  const { run, selected, open, blocked, idle, actions } = props;
  const failed = failedStep(run);
  const error = failed ? run.steps[failed]?.error : null;
  return (
    <section
      className={`jp-aidevops-runs-run${selected ? ' jp-mod-selected' : ''}`}
      data-run-id={run.run_id}
      data-status={run.status ?? 'unknown'}
    >
      <div className="jp-aidevops-runs-head">
        <label className="jp-aidevops-runs-pick">
          <input
            type="checkbox"
            className="jp-aidevops-runs-select"
            title="Pick for a diff (two runs)"
            checked={selected}
            onChange={() => actions.toggleSelected(run.run_id)}
          />
          <code className="jp-aidevops-runs-id">{run.run_id}</code>
        </label>
        <span className="jp-aidevops-runs-pipeline">{run.pipeline ?? '?'}</span>
        <span className={`jp-aidevops-badge jp-aidevops-runs-status ${badgeClass(run.status)}`}>
          {run.status ?? 'unknown'}
        </span>
        <span
          className="jp-aidevops-muted jp-aidevops-runs-when"
          title={run.finished ? `finished ${formatWhen(run.finished)}` : ''}
        >
          {formatWhen(run.started)}
        </span>
        <span className="jp-aidevops-runs-duration">{formatDuration(run.duration_s)}</span>
        {run.resumed_from ? (
          <span className="jp-aidevops-muted jp-aidevops-runs-resumed">resumed from {run.resumed_from}</span>
        ) : null}
      </div>
      <Steps run={run} open={open} actions={actions} />
      {open && run.steps[open.step] ? (
        <StepDetail run={run} open={open} step={run.steps[open.step]} blocked={blocked} actions={actions} />
      ) : null}
      {failed ? (
        <div className="jp-aidevops-error jp-aidevops-runs-step-error">{`${failed} failed${error ? ': ' + error : ''}`}</div>
      ) : null}
      <Params run={run} />
      {failed || run.status === 'failed' || run.status === 'interrupted' ? (
        <div className="jp-aidevops-actions">
          <Button
            label={failed ? 'Re-run from failed step' : 'Re-run'}
            cls="jp-aidevops-rerun"
            onClick={() => actions.rerun(run)}
            title={
              failed
                ? `Run ${run.pipeline} again; the steps before ${failed} come from the cache`
                : `Run ${run.pipeline} again`
            }
            disabled={!idle}
          />
        </div>
      ) : null}
    </section>
  );
}

function Steps(props: { run: RunSummary; open: IOpenStep | null; actions: IRunsActions }): React.ReactElement {
  const { run, open, actions } = props;
  const notebooks = new Map<string, RunNotebook>((run.notebooks || []).map(nb => [nb.step, nb]));
  return (
    <div className="jp-aidevops-runs-steps">
      {Object.entries(run.steps || {}).map(([name, step]) => (
        <StepChip
          key={name}
          runId={run.run_id}
          name={name}
          step={step}
          notebook={notebooks.get(name)}
          expanded={open?.step === name}
          actions={actions}
        />
      ))}
    </div>
  );
}

/** A step: its label (a link to its executed notebook when there is one) and the toggle of its details. */
function StepChip(props: {
  runId: string;
  name: string;
  step: RunStep;
  notebook: RunNotebook | undefined;
  expanded: boolean;
  actions: IRunsActions;
}): React.ReactElement {
  const { runId, name, step, notebook, expanded, actions } = props;
  const status = step.status ?? 'pending';
  const label = [name, status, formatDuration(step.duration_s)].filter(Boolean).join(' · ');
  const title = chipTitle(name, step, notebook?.available ? 'open' : notebook ? 'missing' : 'none');
  const cls = `jp-aidevops-runs-step jp-mod-${status.replace(/\s+/g, '-')}${expanded ? ' jp-mod-expanded' : ''}`;
  return (
    <span className={cls} data-chip={name}>
      {notebook?.available ? (
        <a
          className="jp-aidevops-runs-step-label jp-aidevops-runs-notebook-link"
          href="#"
          data-step={name}
          data-step-status={status}
          title={title}
          onClick={event => {
            event.preventDefault();
            actions.openNotebook(runId, name, notebook.name);
          }}
        >
          {label}
        </a>
      ) : (
        <span className="jp-aidevops-runs-step-label" data-step={name} data-step-status={status} title={title}>
          {label}
        </span>
      )}
      <button
        type="button"
        className="jp-aidevops-runs-step-toggle"
        aria-expanded={expanded}
        aria-label={`${name}: why it ran, and run from here`}
        title={expanded ? 'Hide the details' : 'Why it ran (or which run it reused), and Run from here'}
        onClick={() => actions.toggleStep(runId, name)}
      >
        {expanded ? '▾' : '▸'}
      </button>
    </span>
  );
}

/** An open step: why it ran or which run it reused, and "Run from here" with its inline confirmation. */
export function StepDetail(props: {
  run: RunSummary;
  open: IOpenStep;
  step: RunStep;
  blocked: string | null;
  actions: IRunsActions;
}): React.ReactElement {
  const { run, open, step, blocked, actions } = props;
  const why = whyLines(step);
  const overrides = Object.entries(run.overrides ?? {});
  return (
    <div className="jp-aidevops-runs-step-detail" data-detail-step={open.step}>
      <div className="jp-aidevops-runs-step-detail-head">
        <strong>{open.step}</strong>{' '}
        {[step.status ?? 'pending', step.cache ? `cache ${step.cache}` : '', formatDuration(step.duration_s)]
          .filter(Boolean)
          .join(' · ')}
      </div>
      {why.length ? (
        <ul className="jp-aidevops-runs-why">
          {why.map((line, i) => (
            <li key={i}>{line}</li>
          ))}
        </ul>
      ) : (
        <div className="jp-aidevops-muted jp-aidevops-runs-why-none">
          No explanation recorded for this step (it was not run, or ran before aidevops recorded why).
        </div>
      )}
      {open.confirming ? (
        <div className="jp-aidevops-runs-confirm" role="group" aria-label={`Run ${run.pipeline} from ${open.step}`}>
          <div className="jp-aidevops-runs-confirm-text">
            Run <strong>{open.step}</strong> and every step downstream of it again, with this run's params
            {overrides.length ? ` (${overrides.map(([k, v]) => `${k}=${formatValue(v)}`).join(', ')})` : ''}? The steps
            it needs come from the cache.
          </div>
          <ErrorAlert error={open.error} />
          <div className="jp-aidevops-actions">
            <Button
              label={`Run from ${open.step}`}
              cls="jp-mod-accept jp-aidevops-runs-confirm-ok"
              onClick={() => actions.confirmRunFrom()}
              disabled={blocked !== null}
              title={blocked ?? ''}
            />
            <Button label="Cancel" cls="jp-aidevops-runs-confirm-cancel" onClick={() => actions.cancelRunFrom()} />
          </div>
        </div>
      ) : (
        <div className="jp-aidevops-actions">
          <Button
            label="Run from here"
            cls="jp-aidevops-runs-from"
            onClick={() => actions.askRunFrom()}
            disabled={blocked !== null}
            title={
              blocked ??
              `Run ${open.step} and everything downstream of it again (aidevops run ${run.pipeline} --from ${open.step}); upstream comes from the cache`
            }
          />
        </div>
      )}
    </div>
  );
}

/** The run's resolved params, its overrides highlighted (step-scoped overrides `step.key` listed too). */
export function Params(props: { run: RunSummary }): React.ReactElement {
  const params = props.run.params ?? {};
  const overrides = props.run.overrides ?? {};
  const keys = [...Object.keys(overrides), ...Object.keys(params).filter(k => !(k in overrides))];
  return (
    <div className="jp-aidevops-runs-params">
      {keys.map(key => {
        const overridden = key in overrides;
        return (
          <span
            key={key}
            className={`jp-aidevops-runs-param${overridden ? ' jp-mod-override' : ''}`}
            data-param={key}
            title={overridden ? `${key} overridden for this run` : `${key} (pipeline default)`}
          >
            {`${key}=${formatValue(overridden ? overrides[key] : params[key])}`}
          </span>
        );
      })}
    </div>
  );
}
