/**
 * The Runs panel's state: pipeline runs (newest first), the two runs picked for a diff, and the one
 * background job being followed (a pipeline started or re-run from the panel). One @lumino/polling Poll
 * refreshes it all; it stands by while the panel is hidden, like the Deploy panel's.
 */

import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import { AidevopsApi, ApiError, Job, JobDetail, RunSummary } from '../common/api';
import { errorMessage, StandbyPoll } from '../common/polledmodel';

/** A job as POST answers it, then as GET jobs/{id} answers it (with its log tail and run). */
export type FollowedJob = Job & Partial<Pick<JobDetail, 'log_tail' | 'run'>>;

export const RUNS_POLL_INTERVAL_MS = 2000;
export const RUNS_LIMIT = 30;

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
    return { error: `The params are not valid JSON (${String((reason as Error)?.message ?? reason)}); write an object such as {"epochs": 4}.` };
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { error: `The params must be a JSON object such as {"epochs": 4}, not ${Array.isArray(value) ? 'a list' : value === null ? 'null' : typeof value}.` };
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

export class RunsModel {
  constructor(
    readonly api: AidevopsApi,
    interval = RUNS_POLL_INTERVAL_MS
  ) {
    this._polling = new StandbyPoll('aidevops:runs-panel', interval, () => this.refresh());
  }

  /** Refreshes the model while its panel is shown (see StandbyPoll). */
  get poll(): Poll {
    return this._polling.poll;
  }

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get runs(): RunSummary[] {
    return this._runs;
  }

  /** Run ids picked for a diff, in the order they were picked (at most two). */
  get selected(): string[] {
    return this._selected;
  }

  /** The followed job (GET jobs/{id}, with its log tail), null when none was started here. */
  get job(): FollowedJob | null {
    return this._job;
  }

  get error(): string | null {
    return this._error;
  }

  get busy(): string | null {
    return this._busy;
  }

  get loaded(): boolean {
    return this._loaded;
  }

  get visible(): boolean {
    return this._polling.visible;
  }

  /** Shown panel: refresh now and keep polling; hidden: stand by (no requests). */
  set visible(value: boolean) {
    this._polling.visible = value;
  }

  /** Fetch the followed job (while it runs) and then the runs, once. */
  async refresh(): Promise<void> {
    const before = this.signature();
    try {
      if (this._job && this._job.status === 'running') {
        this._job = await this.followJob(this._job);
      }
      this._runs = await this.api.runs(RUNS_LIMIT);
      const ids = new Set(this._runs.map(r => r.run_id));
      this._selected = this._selected.filter(id => ids.has(id));
      this._loaded = true;
      if (!this._busy) {
        this._error = null;
      }
    } catch (reason) {
      this._error = errorMessage(reason);
      this._changed.emit();
      throw reason; // the poll backs off
    }
    if (this.signature() !== before) {
      this._changed.emit(); // an unchanged answer re-renders nothing (a click or a scroll in progress survives)
    }
  }

  /** Pick or unpick a run for the diff; picking a third drops the first picked. */
  toggleSelected(runId: string): void {
    if (this._selected.includes(runId)) {
      this._selected = this._selected.filter(id => id !== runId);
    } else {
      this._selected = [...this._selected, runId].slice(-2);
    }
    this._changed.emit();
  }

  /** The two picked runs as (base, remote): the older one is the base. */
  diffPair(): [string, string] | null {
    if (this._selected.length !== 2) {
      return null;
    }
    const [a, b] = this._selected.map(id => this._runs.find(r => r.run_id === id));
    if (!a || !b) {
      return null;
    }
    return (a.started ?? '') <= (b.started ?? '') ? [a.run_id, b.run_id] : [b.run_id, a.run_id];
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
    if (this._job && this._job.status !== 'running') {
      this._job = null;
      this._changed.emit();
    }
  }

  /** Show an error the panel found (e.g. a diff that could not be opened). */
  setError(error: string | null): void {
    this._error = error;
    this._changed.emit();
  }

  dispose(): void {
    this._polling.dispose();
    Signal.clearData(this);
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

  private signature(): string {
    return JSON.stringify([this._runs, this._job, this._selected, this._error, this._busy, this._loaded]);
  }

  private async launch(label: string, work: () => Promise<Job>): Promise<string | null> {
    if (this._busy) {
      return `Wait until "${this._busy}" has finished, then try again.`;
    }
    if (this._job && this._job.status === 'running') {
      return `Job ${this._job.id} (${describeJob(this._job)}) is still running; wait until it ends, then try again.`;
    }
    this._busy = label;
    this._error = null;
    this._changed.emit();
    let failure: string | null = null;
    try {
      this._job = await work();
    } catch (reason) {
      failure = errorMessage(reason);
    } finally {
      this._busy = null;
    }
    this._changed.emit();
    if (failure === null) {
      void this.poll.refresh(); // follow the job now, not at the next tick
    }
    return failure;
  }

  private readonly _polling: StandbyPoll;
  private _changed = new Signal<this, void>(this);
  private _runs: RunSummary[] = [];
  private _selected: string[] = [];
  private _job: FollowedJob | null = null;
  private _error: string | null = null;
  private _busy: string | null = null;
  private _loaded = false;
}

/** "run ci" / "retrain ci-digits" from a job's command line. */
export function describeJob(job: Job): string {
  return job.argv.filter(a => a !== '-p' && !a.includes('=')).join(' ') || job.kind;
}
