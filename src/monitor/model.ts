/**
 * The Monitor panel's state: the deployments to pick from, the picked one's monitor summary, chart series
 * and alerts, polled while the panel is shown (see PolledModel); and a retraining started from the panel,
 * followed (GET jobs/{id}) until it ends.
 */

import {
  AidevopsApi,
  ApiError,
  Deployment,
  Job,
  JobDetail,
  MonitorAlert,
  MonitorEvent,
  MonitorSeries,
  MonitorSummary
} from '../common/api';
import { errorMessage, PolledModel } from '../common/polledmodel';
import type { IMonitorState } from './view';

export const MONITOR_POLL_MS = 3000;
export const JOB_POLL_MS = 1500;
/** The span the time charts cover, and their number of buckets. */
export const SERIES_MINUTES = 10;
export const SERIES_BUCKETS = 120;

const LIVE_STATES = ['running', 'restarting', 'starting'];

export function isLive(d: Deployment | undefined): boolean {
  return !!d && d.target === 'local' && LIVE_STATES.includes(d.state);
}

/** The pipeline run a finished retraining produced: the job's run_id, its run, or the CLI's last line. */
export function runIdOf(job: Job | JobDetail | null): string | null {
  if (!job) {
    return null;
  }
  if (job.run_id) {
    return job.run_id;
  }
  const detail = job as JobDetail;
  if (detail.run?.run_id) {
    return detail.run.run_id;
  }
  const lines = [job.message ?? '', ...(detail.log_tail ?? []).slice().reverse()];
  for (const text of lines) {
    const found = /pipeline run ([A-Za-z0-9_.:-]+)\)/.exec(text);
    if (found) {
      return found[1];
    }
  }
  return null;
}

/** What the Monitor panel shows besides the status and what follows from it (see IMonitorState). */
export interface IMonitorShown {
  deployments: Deployment[];
  /** The picked deployment's name (the first live one until the user picks). */
  selected: string | null;
  /** The latest monitor summary of the picked deployment; null while it is not running. */
  summary: MonitorSummary | null;
  series: MonitorSeries | null;
  /** Alert states (from the summary, or GET alerts while the deployment is stopped). */
  alerts: MonitorAlert[];
  /** Alert events, newest first. */
  events: MonitorEvent[];
  /** The retraining started from this panel (the latest), with its log tail; null before any. */
  job: JobDetail | null;
  jobError: string | null;
}

export class MonitorModel extends PolledModel<IMonitorShown> {
  constructor(
    readonly api: AidevopsApi,
    interval = MONITOR_POLL_MS,
    private readonly jobInterval = JOB_POLL_MS
  ) {
    super('aidevops:monitor-panel', interval, {
      deployments: [],
      selected: null,
      summary: null,
      series: null,
      alerts: [],
      events: [],
      job: null,
      jobError: null
    });
  }

  /** The picked deployment. */
  get deployment(): Deployment | undefined {
    return this.state.deployments.find(d => d.name === this.state.selected);
  }

  /** True from the click until the job has ended (or could not start). */
  get retraining(): boolean {
    return this._starting || (this.state.job !== null && this.state.job.status === 'running');
  }

  /** Shown again: follow a running retraining again (its polling stopped while hidden). */
  protected onVisibilityChanged(visible: boolean): void {
    if (visible && this.state.job?.status === 'running') {
      this.followJob();
    }
  }

  /** Everything the panel shows, in one object. */
  get view(): IMonitorState {
    return { ...super.view, deployment: this.deployment, retraining: this.retraining };
  }

  /** Pick a deployment: its data is cleared and fetched now. */
  select(name: string): void {
    if (name === this.state.selected) {
      return;
    }
    this.state.selected = name;
    this.state.summary = null;
    this.state.series = null;
    this.state.alerts = [];
    this.state.events = [];
    this.emitChanged();
    void this.poll.refresh();
  }

  /** Fetch the deployments, then the picked one's summary and series (or its alerts when it is stopped). */
  protected async fetch(): Promise<void> {
    const deployments = await this.api.deployments();
    this.state.deployments = deployments;
    if (!this.state.selected || !deployments.some(d => d.name === this.state.selected)) {
      this.state.selected = (deployments.find(isLive) ?? deployments[0])?.name ?? null;
    }
    const name = this.state.selected;
    const dep = this.deployment;
    if (!name) {
      this.state.summary = null;
      this.state.series = null;
      this.state.alerts = [];
      this.state.events = [];
    } else if (isLive(dep)) {
      let summary: MonitorSummary | null = null;
      let series: MonitorSeries | null = null;
      try {
        [summary, series] = await Promise.all([
          this.api.monitor(name),
          this.api.series(name, SERIES_MINUTES, SERIES_BUCKETS)
        ]);
      } catch (reason) {
        if (!(reason instanceof ApiError && reason.status === 409)) {
          throw reason;
        }
        // stopped between the two calls: show its alerts as for any stopped deployment
      }
      if (name !== this.state.selected) {
        return; // the user picked another one meanwhile
      }
      if (summary) {
        this.state.summary = summary;
        this.state.series = series;
        this.state.alerts = summary.alerts ?? [];
        this.state.events = (summary.events ?? []).slice().reverse();
      } else {
        await this.loadAlerts(name);
      }
    } else {
      await this.loadAlerts(name);
    }
  }

  /** POST retrain for the picked deployment, then follow the job until it ends. */
  async retrain(): Promise<boolean> {
    const name = this.state.selected;
    if (!name || this.retraining) {
      return false;
    }
    this._starting = true;
    this.state.jobError = null;
    this.emitChanged();
    try {
      const job = await this.api.retrain(name, 'retrain now, from the Monitor panel');
      this.state.job = { ...job, log_tail: [], run: null };
    } catch (reason) {
      this.state.jobError = errorMessage(reason);
      return false;
    } finally {
      this._starting = false;
      this.emitChanged();
    }
    this.followJob();
    return true;
  }

  dispose(): void {
    if (this._jobTimer !== null) {
      clearTimeout(this._jobTimer);
    }
    super.dispose();
  }

  /** Poll GET jobs/{id} every jobInterval while visible, until the job is no longer running. */
  private followJob(): void {
    if (this._jobTimer !== null || this.isDisposed) {
      return;
    }
    const tick = async () => {
      this._jobTimer = null;
      const job = this.state.job;
      if (!job || this.isDisposed || !this.visible) {
        return; // picked up again when shown
      }
      try {
        this.state.job = await this.api.getJob(job.id);
        this.state.jobError = null;
      } catch (reason) {
        this.state.jobError = errorMessage(reason);
      }
      this.emitChanged();
      if (this.state.job?.status === 'running' && !this.isDisposed) {
        this._jobTimer = setTimeout(tick, this.jobInterval);
      } else {
        void this.poll.refresh(); // the deployment may have switched versions
      }
    };
    this._jobTimer = setTimeout(tick, 0);
  }

  private async loadAlerts(name: string): Promise<void> {
    const answer = await this.api.alerts(name);
    if (name !== this.state.selected) {
      return;
    }
    this.state.summary = null;
    this.state.series = null;
    this.state.alerts = answer.alerts ?? [];
    this.state.events = answer.events ?? [];
  }

  private _starting = false;
  private _jobTimer: ReturnType<typeof setTimeout> | null = null;
}
