/**
 * The Runs panel's state: pipeline runs (newest first), the two runs picked for a diff, the step whose
 * explanation is open (and its "Run from here" confirmation), the workspace's schedules, and the one
 * background job being followed (a pipeline started, re-run or run from a step in the panel). Polled
 * while the panel is shown (see PolledModel).
 */

import { AidevopsApi, ApiError, Job, JobDetail, RunSummary, Schedule } from '../common/api';
import { errorMessage, IPolledStatus, PolledModel } from '../common/polledmodel';

/** A job as POST answers it, then as GET jobs/{id} answers it (with its log tail and run). */
export type FollowedJob = Job & Partial<Pick<JobDetail, 'log_tail' | 'run'>>;

export const RUNS_POLL_INTERVAL_MS = 2000;
export const RUNS_LIMIT = 30;

/** The step chip whose details are open: its why, and "Run from here" (asked, then confirmed or cancelled). */
export interface IOpenStep {
  runId: string;
  step: string;
  confirming: boolean;
  /** The server's sentence when a confirmed run from here was refused. */
  error: string | null;
}

/** What the Runs panel shows besides the status. */
export interface IRunsState {
  /** Newest first. */
  runs: RunSummary[];
  /** Run ids picked for a diff, in the order they were picked (at most two). */
  selected: string[];
  /** The followed job (GET jobs/{id}, with its log tail), null when none was started here. */
  job: FollowedJob | null;
  open: IOpenStep | null;
  /** null: the server has no schedules API (an older aidevops), so the section is hidden. */
  schedules: Schedule[] | null;
  schedulesError: string | null;
  /** When the last answer came (ms since the epoch): what relative times are relative to. */
  now: number;
}

/** Everything the view shows, in one object. */
export type IRunsViewState = IRunsState & IPolledStatus;

/** Parse a params text box: a JSON object, or one sentence saying what is wrong with it. */
export function parseParams(text: string): { params: Record<string, unknown> } | { error: string } {
  const trimmed = text.trim();
  if (!trimmed) {
    return { params: {} };
  }
  let value: unknown;
  try {
    value = JSON.parse(trimmed);
  } catch (reason) {
    return {
      error: `The params are not valid JSON (${String((reason as Error)?.message ?? reason)}); write an object such as {"epochs": 4}.`
    };
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return {
      error: `The params must be a JSON object such as {"epochs": 4}, not ${Array.isArray(value) ? 'a list' : value === null ? 'null' : typeof value}.`
    };
  }
  return { params: value as Record<string, unknown> };
}

/** The step a failed run stopped at (the first failed step in pipeline order), or null. */
export function failedStep(run: RunSummary): string | null {
  for (const [name, step] of Object.entries(run.steps || {})) {
    if (step.status === 'failed') {
      return name;
    }
  }
  return null;
}

/** Pipeline names seen in the runs, most recently run first. */
export function knownPipelines(runs: RunSummary[]): string[] {
  const out: string[] = [];
  for (const run of runs) {
    if (run.pipeline && !out.includes(run.pipeline)) {
      out.push(run.pipeline);
    }
  }
  return out;
}

/** "run ci" / "run ci --from train --force" / "retrain ci-digits" from a job's command line. */
export function describeJob(job: Job): string {
  return job.argv.filter(a => a !== '-p' && !a.includes('=')).join(' ') || job.kind;
}

/** Why "Run from here" cannot start now (a sentence for the button's tooltip), or null when it can. */
export function runFromBlocked(run: RunSummary, busy: string | null, job: FollowedJob | null): string | null {
  if (!run.pipeline) {
    return 'This run does not name its pipeline, so it cannot be run again.';
  }
  if (run.status === 'running') {
    return 'This run is still running; wait until it ends.';
  }
  if (busy) {
    return `Wait until "${busy}" has finished.`;
  }
  if (job && job.status === 'running') {
    return `Job ${job.id} (${describeJob(job)}) is still running; wait until it ends.`;
  }
  return null;
}

export class RunsModel extends PolledModel<IRunsState> {
  constructor(
    readonly api: AidevopsApi,
    interval = RUNS_POLL_INTERVAL_MS,
    private readonly clock: () => number = Date.now
  ) {
    super('aidevops:runs-panel', interval, {
      runs: [],
      selected: [],
      job: null,
      open: null,
      schedules: null,
      schedulesError: null,
      now: 0
    });
  }

  /** One poll: the followed job (while it runs), the runs, then the schedules. */
  protected async fetch(): Promise<void> {
    if (this.state.job && this.state.job.status === 'running') {
      this.state.job = await this.followJob(this.state.job);
    }
    this.state.runs = await this.api.runs(RUNS_LIMIT);
    this.state.now = this.clock();
    const ids = new Set(this.state.runs.map(r => r.run_id));
    this.state.selected = this.state.selected.filter(id => ids.has(id));
    if (this.state.open && !ids.has(this.state.open.runId)) {
      this.state.open = null;
    }
    await this.fetchSchedules();
  }

  /** Pick or unpick a run for the diff; picking a third drops the first picked. */
  toggleSelected(runId: string): void {
    if (this.state.selected.includes(runId)) {
      this.state.selected = this.state.selected.filter(id => id !== runId);
    } else {
      this.state.selected = [...this.state.selected, runId].slice(-2);
    }
    this.emitChanged();
  }

  /** The two picked runs as (base, remote): the older one is the base. */
  diffPair(): [string, string] | null {
    if (this.state.selected.length !== 2) {
      return null;
    }
    const [a, b] = this.state.selected.map(id => this.state.runs.find(r => r.run_id === id));
    if (!a || !b) {
      return null;
    }
    return (a.started ?? '') <= (b.started ?? '') ? [a.run_id, b.run_id] : [b.run_id, a.run_id];
  }

  /** Open a step chip's details (another one open closes); the open one closes. */
  toggleStep(runId: string, step: string): void {
    const same = this.state.open && this.state.open.runId === runId && this.state.open.step === step;
    this.state.open = same ? null : { runId, step, confirming: false, error: null };
    this.emitChanged();
  }

  /** "Run from here" on the open step: ask for confirmation first. */
  askRunFrom(): void {
    if (this.state.open) {
      this.state.open = { ...this.state.open, confirming: true, error: null };
      this.emitChanged();
    }
  }

  cancelRunFrom(): void {
    if (this.state.open) {
      this.state.open = { ...this.state.open, confirming: false, error: null };
      this.emitChanged();
    }
  }

  /**
   * Confirmed: re-run the open step's run from that step (its overrides, `run --from STEP --force`) and
   * follow the job; the details close. Refused: the server's sentence stays in the confirmation.
   */
  async confirmRunFrom(): Promise<boolean> {
    const open = this.state.open;
    if (!open) {
      return false;
    }
    const run = this.state.runs.find(r => r.run_id === open.runId);
    const failure = await this.launch(`Running ${run?.pipeline ?? open.runId} from ${open.step}…`, () =>
      this.api.rerun(open.runId, undefined, open.step)
    );
    if (this.state.open !== null && this.state.open.runId === open.runId && this.state.open.step === open.step) {
      this.state.open = failure === null ? null : { ...this.state.open, confirming: true, error: failure };
    }
    this.emitChanged();
    return failure === null;
  }

  /** POST runs; null when the job started (and is followed), else the server's sentence. */
  startRun(pipeline: string, params: Record<string, unknown>): Promise<string | null> {
    return this.launch(`Starting pipeline ${pipeline}…`, () => this.api.startRun(pipeline, params));
  }

  /** POST runs/{id}/rerun; null when the job started (and is followed), else the server's sentence. */
  rerun(runId: string, params?: Record<string, unknown>): Promise<string | null> {
    return this.launch(`Re-running ${runId}…`, () => this.api.rerun(runId, params));
  }

  /** Forget the followed job (its box goes away). */
  dismissJob(): void {
    if (this.state.job && this.state.job.status !== 'running') {
      this.state.job = null;
      this.emitChanged();
    }
  }

  /** Show an error the panel found (e.g. a diff that could not be opened). */
  showError(error: string | null): void {
    this.setError(error);
  }

  /** Schedules once the server is known to have them: a 404 hides the section for good, another failure is shown in it. */
  private async fetchSchedules(): Promise<void> {
    if (!this._schedulesApi) {
      return;
    }
    try {
      this.state.schedules = await this.api.schedules();
      this.state.schedulesError = null;
    } catch (reason) {
      if (reason instanceof ApiError && reason.status === 404) {
        this._schedulesApi = false;
        this.state.schedules = null;
        this.state.schedulesError = null;
      } else {
        this.state.schedulesError = errorMessage(reason);
      }
    }
  }

  /** The job's latest state; a job the server no longer knows (4xx) stops being followed, with its reason. */
  private async followJob(job: FollowedJob): Promise<FollowedJob> {
    try {
      return await this.api.getJob(job.id);
    } catch (reason) {
      if (reason instanceof ApiError && reason.status >= 400 && reason.status < 500) {
        return { ...job, status: 'unknown', message: reason.message };
      }
      throw reason;
    }
  }

  /**
   * Start a job (one at a time) and follow it at once; null when it started, else the sentence (kept for
   * the dialog or confirmation that asked, not shown as the panel's error).
   */
  private async launch(label: string, work: () => Promise<Job>): Promise<string | null> {
    if (this.busy) {
      return `Wait until "${this.busy}" has finished, then try again.`;
    }
    if (this.state.job && this.state.job.status === 'running') {
      return `Job ${this.state.job.id} (${describeJob(this.state.job)}) is still running; wait until it ends, then try again.`;
    }
    let failure: string | null = null;
    await this.act(label, async () => {
      try {
        this.state.job = await work();
      } catch (reason) {
        failure = errorMessage(reason);
      }
    });
    return failure;
  }

  /** False once the server answered 404 for the schedules (an older aidevops): not asked again. */
  private _schedulesApi = true;
}
