/**
 * The Deploy panel's state: registered models and deployments, refreshed by a @lumino/polling Poll
 * that stands by while the panel is hidden, plus the one action in progress and the last error.
 */

import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import { AidevopsApi, Deployment, DeployRequest, RegisteredModel } from './api';
import type { IViewState } from './components';
import { errorMessage, StandbyPoll } from './polling';

export const POLL_INTERVAL_MS = 3000;

export class DeployModel {
  constructor(
    readonly api: AidevopsApi,
    interval = POLL_INTERVAL_MS
  ) {
    this._polling = new StandbyPoll('aidevops:deploy-panel', interval, () => this.refresh());
  }

  /** Refreshes the model while its panel is shown (see StandbyPoll). */
  get poll(): Poll {
    return this._polling.poll;
  }

  /** Emitted whenever anything shown changes. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get models(): RegisteredModel[] {
    return this._models;
  }

  get deployments(): Deployment[] {
    return this._deployments;
  }

  /** The last error, in words a user can act on; null when the last call succeeded. */
  get error(): string | null {
    return this._error;
  }

  /** What is being done now (e.g. "Deploying ci-digits@champion…"), null when idle. */
  get busy(): string | null {
    return this._busy;
  }

  /** Everything the panel shows, in one object. */
  get view(): IViewState {
    return { models: this._models, deployments: this._deployments, error: this._error, busy: this._busy, loaded: this._loaded };
  }

  /** True once a refresh has answered. */
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

  /** Fetch models and deployments once. */
  async refresh(): Promise<void> {
    try {
      const [models, deployments] = await Promise.all([
        this.api.models(),
        this.api.deployments()
      ]);
      this._models = models;
      this._deployments = deployments;
      this._loaded = true;
      if (!this._busy) {
        this._error = null;
      }
    } catch (reason) {
      this._error = errorMessage(reason);
      this._changed.emit();
      throw reason; // the poll backs off
    }
    this._changed.emit();
  }

  deploy(request: DeployRequest): Promise<boolean> {
    const what = request.alias
      ? `${request.model}@${request.alias}`
      : `${request.model} v${request.version}`;
    return this.act(`Deploying ${what}…`, () => this.api.deploy(request));
  }

  promote(name: string): Promise<boolean> {
    return this.act(`Promoting the canary of ${name}…`, () =>
      this.api.promote(name, 'promoted from the Deploy panel')
    );
  }

  rollback(name: string): Promise<boolean> {
    return this.act(`Rolling back ${name}…`, () =>
      this.api.rollback(name, 'rolled back from the Deploy panel')
    );
  }

  canary(name: string, version: string, share: number): Promise<boolean> {
    return this.act(
      `Starting canary v${version} of ${name} at ${Math.round(share * 100)} %…`,
      () => this.api.canary(name, version, share, 'canary from the Deploy panel')
    );
  }

  clearCanary(name: string): Promise<boolean> {
    return this.act(`Clearing the canary of ${name}…`, () =>
      this.api.clearCanary(name, 'canary cleared from the Deploy panel')
    );
  }

  undeploy(name: string): Promise<boolean> {
    return this.act(`Stopping ${name}…`, () =>
      this.api.undeploy(name, 'undeployed from the Deploy panel')
    );
  }

  dispose(): void {
    this._polling.dispose();
    Signal.clearData(this);
  }

  /** Run one change at a time; true when it succeeded (the error is kept otherwise). */
  private async act(label: string, work: () => Promise<unknown>): Promise<boolean> {
    if (this._busy) {
      this._error = `Wait until "${this._busy}" has finished, then try again.`;
      this._changed.emit();
      return false;
    }
    this._busy = label;
    this._error = null;
    this._changed.emit();
    let failure: string | null = null;
    try {
      await work();
    } catch (reason) {
      failure = errorMessage(reason);
    } finally {
      this._busy = null;
    }
    try {
      await this.refresh();
    } catch {
      // refresh() recorded its own error
    }
    if (failure) {
      // the refresh succeeded or failed on its own; the action's error is the one to show
      this._error = failure;
      this._changed.emit();
    }
    return failure === null;
  }

  private readonly _polling: StandbyPoll;
  private _changed = new Signal<this, void>(this);
  private _models: RegisteredModel[] = [];
  private _deployments: Deployment[] = [];
  private _error: string | null = null;
  private _busy: string | null = null;
  private _loaded = false;
}
