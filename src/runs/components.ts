/**
 * DOM components of the Runs panel: plain functions from state to elements, like the Deploy panel's.
 *
 * DOM contract (browser tests of both panels rely on it): each run row has `data-run-id` and
 * `data-status`; each step chip has `data-step` and `data-step-status`; the followed job's box has
 * `data-job-id` and `data-job-status`.
 */

import { RunDiff, RunNotebook, RunStep, RunSummary } from '../common/api';
import { button, h } from '../common/dom';
import { describeJob, failedStep, FollowedJob } from './model';

export interface IRunsActions {
  refresh(): void;
  toggleSelected(runId: string): void;
  diff(): void;
  runPipeline(): void;
  rerun(run: RunSummary): void;
  openNotebook(runId: string, step: string, name: string): void;
  dismissJob(): void;
}

export interface IRunsViewState {
  runs: RunSummary[];
  selected: string[];
  job: FollowedJob | null;
  error: string | null;
  busy: string | null;
  loaded: boolean;
}

/** 0.04 → "0.04 s", 12.7 → "12.7 s", 95 → "1 min 35 s". */
export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) {
    return '';
  }
  if (seconds < 1) {
    return `${seconds.toFixed(2)} s`;
  }
  if (seconds < 60) {
    return `${seconds.toFixed(1)} s`;
  }
  const minutes = Math.floor(seconds / 60);
  return `${minutes} min ${Math.round(seconds - 60 * minutes)} s`;
}

/** A param value as the user would type it in the params box (JSON, strings too). */
export function formatValue(value: unknown): string {
  return value === undefined ? '—' : JSON.stringify(value);
}

export function formatWhen(iso: string | null): string {
  return iso ? iso.replace('T', ' ').slice(0, 19) : '';
}

export function renderRunsPanel(state: IRunsViewState, actions: IRunsActions): HTMLElement {
  const idle = state.busy === null && !(state.job && state.job.status === 'running');
  const pair = state.selected.length === 2;
  return h(
    'div',
    { class: 'jp-aidevops-body jp-aidevops-runs-body' },
    h(
      'div',
      { class: 'jp-aidevops-header' },
      h('h2', {}, 'Runs'),
      button('Refresh', 'jp-aidevops-refresh', () => actions.refresh(), 'Reload the runs now'),
      button('Run pipeline…', 'jp-aidevops-runs-start', () => actions.runPipeline(), 'Start a pipeline with edited params', !idle),
      button(
        'Diff',
        'jp-aidevops-runs-diff',
        () => actions.diff(),
        pair ? "Show the two picked runs' notebooks side by side (nbdime)" : 'Tick two runs to diff them',
        !pair
      )
    ),
    renderRunsStatus(state),
    state.job ? renderJob(state.job, actions) : null,
    renderRuns(state.runs, state.selected, actions, idle, state.loaded)
  );
}

export function renderRunsStatus(state: Pick<IRunsViewState, 'busy' | 'error'>): HTMLElement {
  const box = h('div', { class: 'jp-aidevops-runs-status-box' }); // not .jp-aidevops-status: the Deploy panel's tests find theirs page-wide
  if (state.busy) {
    box.append(h('div', { class: 'jp-aidevops-progress', role: 'status' }, h('span', { class: 'jp-aidevops-spinner' }), state.busy));
  }
  if (state.error) {
    box.append(h('div', { class: 'jp-aidevops-error', role: 'alert' }, state.error));
  }
  return box;
}

/** ipykernel's warning on every kernel start: nothing a user of the panel can act on. */
const KERNEL_NOISE = /^\[IPKernelApp\] WARNING \| Kernel is running over TCP without encryption/;

export function renderJob(job: FollowedJob, actions: IRunsActions): HTMLElement {
  const running = job.status === 'running';
  const box = h(
    'section',
    { class: `jp-aidevops-runs-job jp-mod-${job.status}`, 'data-job-id': job.id, 'data-job-status': job.status },
    h(
      'div',
      { class: 'jp-aidevops-runs-job-head' },
      running ? h('span', { class: 'jp-aidevops-spinner' }) : null,
      h('strong', {}, `${describeJob(job)}`),
      ' ',
      h('span', { class: `jp-aidevops-badge jp-aidevops-runs-job-status ${badgeClass(job.status)}` }, job.status),
      job.run_id ? h('span', { class: 'jp-aidevops-runs-job-run' }, ` run ${job.run_id}`) : null,
      running ? null : button('Dismiss', 'jp-aidevops-runs-job-dismiss', () => actions.dismissJob(), 'Hide this job')
    )
  );
  if (job.message) {
    box.append(h('div', { class: 'jp-aidevops-muted' }, job.message));
  }
  const tail = (job.log_tail ?? []).filter(line => !KERNEL_NOISE.test(line));
  if (tail.length) {
    box.append(h('pre', { class: 'jp-aidevops-runs-log' }, tail.join('\n')));
  }
  return box;
}

export function renderRuns(runs: RunSummary[], selected: string[], actions: IRunsActions, idle: boolean, loaded: boolean): HTMLElement {
  if (!runs.length) {
    return h('p', { class: 'jp-aidevops-empty' }, loaded ? 'No pipeline runs yet: start one with "Run pipeline…" (or `aidevops run`).' : 'Loading…');
  }
  return h('div', { class: 'jp-aidevops-runs-list' }, ...runs.map(r => renderRun(r, selected.includes(r.run_id), actions, idle)));
}

function badgeClass(status: string | null): string {
  switch (status) {
    case 'succeeded':
    case 'ran':
      return 'jp-mod-passed';
    case 'failed':
    case 'interrupted':
      return 'jp-mod-failed';
    case 'running':
      return 'jp-mod-running';
    default:
      return 'jp-mod-unknown';
  }
}

export function renderRun(run: RunSummary, selected: boolean, actions: IRunsActions, idle: boolean): HTMLElement {
  const pick = h('input', { type: 'checkbox', class: 'jp-aidevops-runs-select', title: 'Pick for a diff (two runs)' });
  pick.checked = selected;
  pick.addEventListener('change', () => actions.toggleSelected(run.run_id));
  const failed = failedStep(run);
  const head = h(
    'div',
    { class: 'jp-aidevops-runs-head' },
    h('label', { class: 'jp-aidevops-runs-pick' }, pick, h('code', { class: 'jp-aidevops-runs-id' }, run.run_id)),
    h('span', { class: 'jp-aidevops-runs-pipeline' }, run.pipeline ?? '?'),
    h('span', { class: `jp-aidevops-badge jp-aidevops-runs-status ${badgeClass(run.status)}` }, run.status ?? 'unknown'),
    h('span', { class: 'jp-aidevops-muted jp-aidevops-runs-when', title: run.finished ? `finished ${formatWhen(run.finished)}` : '' }, formatWhen(run.started)),
    h('span', { class: 'jp-aidevops-runs-duration' }, formatDuration(run.duration_s)),
    run.resumed_from ? h('span', { class: 'jp-aidevops-muted jp-aidevops-runs-resumed' }, `resumed from ${run.resumed_from}`) : null
  );
  const row = h(
    'section',
    { class: `jp-aidevops-runs-run${selected ? ' jp-mod-selected' : ''}`, 'data-run-id': run.run_id, 'data-status': run.status ?? 'unknown' },
    head,
    renderSteps(run, actions)
  );
  if (failed) {
    const error = run.steps[failed]?.error;
    row.append(h('div', { class: 'jp-aidevops-error jp-aidevops-runs-step-error' }, `${failed} failed${error ? ': ' + error : ''}`));
  }
  row.append(renderParams(run));
  if (failed || run.status === 'failed' || run.status === 'interrupted') {
    row.append(
      h(
        'div',
        { class: 'jp-aidevops-actions' },
        button(
          failed ? 'Re-run from failed step' : 'Re-run',
          'jp-aidevops-rerun',
          () => actions.rerun(run),
          failed ? `Run ${run.pipeline} again; the steps before ${failed} come from the cache` : `Run ${run.pipeline} again`,
          !idle
        )
      )
    );
  }
  return row;
}

export function renderSteps(run: RunSummary, actions: IRunsActions): HTMLElement {
  const notebooks = new Map<string, RunNotebook>((run.notebooks || []).map(nb => [nb.step, nb]));
  const chips = Object.entries(run.steps || {}).map(([name, step]) => stepChip(run.run_id, name, step, notebooks.get(name), actions));
  return h('div', { class: 'jp-aidevops-runs-steps' }, ...chips);
}

function stepChip(runId: string, name: string, step: RunStep, notebook: RunNotebook | undefined, actions: IRunsActions): HTMLElement {
  const status = step.status ?? 'pending';
  const label = [name, status, formatDuration(step.duration_s)].filter(Boolean).join(' · ');
  const cls = `jp-aidevops-runs-step jp-mod-${status.replace(/\s+/g, '-')}`;
  const tip = [
    `${name}: ${status}${step.cache ? ` (cache ${step.cache})` : ''}`,
    step.error ? `error: ${step.error}` : '',
    notebook?.available ? 'click to open its executed notebook' : notebook ? 'its notebook is not in this workspace' : ''
  ]
    .filter(Boolean)
    .join('\n');
  if (notebook?.available) {
    const link = h('a', { class: `${cls} jp-aidevops-runs-notebook-link`, href: '#', 'data-step': name, 'data-step-status': status, title: tip }, label);
    link.addEventListener('click', event => {
      event.preventDefault();
      actions.openNotebook(runId, name, notebook.name);
    });
    return link;
  }
  return h('span', { class: cls, 'data-step': name, 'data-step-status': status, title: tip }, label);
}

/** The run's resolved params, its overrides highlighted (step-scoped overrides `step.key` listed too). */
export function renderParams(run: RunSummary): HTMLElement {
  const params = run.params ?? {};
  const overrides = run.overrides ?? {};
  const box = h('div', { class: 'jp-aidevops-runs-params' });
  const keys = [...Object.keys(overrides), ...Object.keys(params).filter(k => !(k in overrides))];
  for (const key of keys) {
    const overridden = key in overrides;
    const value = overridden ? overrides[key] : params[key];
    box.append(
      h(
        'span',
        {
          class: `jp-aidevops-runs-param${overridden ? ' jp-mod-override' : ''}`,
          'data-param': key,
          title: overridden ? `${key} overridden for this run` : `${key} (pipeline default)`
        },
        `${key}=${formatValue(value)}`
      )
    );
  }
  return box;
}

/** The diff tab's header: the two runs, a step selector when they share several steps, and the params that differ. */
export function renderDiffHeader(diff: RunDiff, onStep: (step: string) => void, error: string | null = null): HTMLElement {
  const header = h(
    'div',
    { class: 'jp-aidevops-diff-header', 'data-base': diff.base, 'data-remote': diff.remote, 'data-step': diff.step },
    h(
      'div',
      { class: 'jp-aidevops-diff-runs' },
      h('span', { class: 'jp-aidevops-diff-base' }, 'base ', h('code', {}, diff.base)),
      ' → ',
      h('span', { class: 'jp-aidevops-diff-remote' }, 'remote ', h('code', {}, diff.remote))
    )
  );
  const steps = diff.steps?.length ? diff.steps : [diff.step];
  if (steps.length > 1) {
    const select = h('select', { class: 'jp-aidevops-diff-step', title: 'The step whose executed notebooks are compared' });
    for (const step of steps) {
      const option = h('option', { value: step }, step);
      option.selected = step === diff.step;
      select.append(option);
    }
    select.addEventListener('change', () => onStep(select.value));
    header.append(h('label', { class: 'jp-aidevops-diff-step-label' }, 'Step ', select));
  } else {
    header.append(h('span', { class: 'jp-aidevops-diff-step-label' }, 'Step ', h('code', { class: 'jp-aidevops-diff-step-name' }, diff.step)));
  }
  const changed = Object.entries(diff.params || {});
  const params = h('div', { class: 'jp-aidevops-diff-params' });
  if (changed.length) {
    params.append(h('span', { class: 'jp-aidevops-muted' }, 'Params that differ: '));
    for (const [key, [base, remote]] of changed) {
      params.append(h('span', { class: 'jp-aidevops-diff-param', 'data-param': key }, `${key}: ${formatValue(base)} → ${formatValue(remote)}`));
    }
  } else {
    params.append(h('span', { class: 'jp-aidevops-muted' }, 'Both runs used the same params.'));
  }
  header.append(params);
  if (error) {
    header.append(h('div', { class: 'jp-aidevops-error', role: 'alert' }, error));
  }
  return header;
}
