/**
 * The polled-model base of the Deploy, Monitor and Runs panels: a @lumino/polling Poll that only runs
 * while the panel is shown (StandbyPoll), the `changed` signal, the last error in words, the one change
 * in progress (`busy`) and `act()` that runs it, `loaded`, and `view`: all the panel shows, in one object.
 * A subclass keeps what it shows in `state`, says what one poll fetches (`fetch()`) and which changes it
 * offers (each through `act()`).
 */

import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import { ApiError } from './api';

/**
 * A Poll that starts on the first show, refreshes on each later show, and stands by while hidden; it
 * backs off (up to 10 × interval) while its factory fails. Held by a model, which passes `visible` on.
 */
export class StandbyPoll {
  constructor(name: string, interval: number, factory: () => Promise<void>) {
    this.poll = new Poll({
      auto: false,
      factory,
      frequency: { interval, backoff: true, max: 10 * interval },
      name,
      // Hidden panel: no requests at all; visible: still pause when the browser tab is hidden.
      standby: () => !this._visible || 'when-hidden'
    });
  }

  readonly poll: Poll;

  get visible(): boolean {
    return this._visible;
  }

  /** Shown panel: refresh now and keep polling; hidden: stand by (no requests). */
  set visible(value: boolean) {
    if (value === this._visible) {
      return;
    }
    this._visible = value;
    if (value) {
      if (!this._started) {
        this._started = true;
        void this.poll.start();
      } else {
        void this.poll.refresh();
      }
    }
  }

  dispose(): void {
    this.poll.dispose();
  }

  private _visible = false;
  private _started = false;
}

/** An error in words a user can act on: the server's own sentence, or what went wrong on the way. */
export function errorMessage(reason: unknown): string {
  if (reason instanceof ApiError) {
    return reason.message;
  }
  return `Unexpected problem: ${String((reason as Error)?.message ?? reason)}`;
}

/** What a panel widget needs of its model (see PolledPanel in ./panel). */
export interface IPolledModel {
  visible: boolean;
  readonly changed: ISignal<unknown, void>;
}

/** How a polled model is doing: the last error, the change in progress, whether a refresh has answered. */
export interface IPolledStatus {
  error: string | null;
  busy: string | null;
  loaded: boolean;
}

/**
 * A panel's state `S`, refreshed by a StandbyPoll while the panel is shown. `refresh()` runs `fetch()` and
 * records its outcome: `loaded` once one answered, the error in words when it failed (the poll then
 * backs off), and a `changed` signal either way.
 */
export abstract class PolledModel<S extends object> implements IPolledModel {
  constructor(name: string, interval: number, initial: S) {
    this._polling = new StandbyPoll(name, interval, () => this.refresh());
    this.state = initial;
  }

  /** Everything the panel shows, in one object: the subclass's state and how the polling is doing. */
  get view(): S & IPolledStatus {
    return { ...this.state, error: this._error, busy: this._busy, loaded: this._loaded };
  }

  /** Refreshes the model while its panel is shown (see StandbyPoll). */
  get poll(): Poll {
    return this._polling.poll;
  }

  /** Emitted whenever anything shown changes. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** The last error, in words a user can act on; null when the last call succeeded. */
  get error(): string | null {
    return this._error;
  }

  /** What is being done now (e.g. "Deploying ci-digits@champion…"), null when idle. */
  get busy(): string | null {
    return this._busy;
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
    if (value === this._polling.visible) {
      return;
    }
    this._polling.visible = value;
    this.onVisibilityChanged(value);
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  /** Fetch once (what a poll does); rejects when the fetch failed, after recording its error. */
  async refresh(): Promise<void> {
    try {
      await this.fetch();
      this._loaded = true;
      if (!this._busy) {
        this._error = null; // an action's error stays until the next action
      }
    } catch (reason) {
      this._error = errorMessage(reason);
      this.emitChanged();
      throw reason; // the poll backs off
    }
    this.emitChanged();
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this._polling.dispose();
    Signal.clearData(this);
  }

  /** What the panel shows besides the status: what the polls fetched and what the user picked. */
  protected readonly state: S;

  /** One poll's requests: store what they answer; throw to report a failure. */
  protected abstract fetch(): Promise<void>;

  /** Called after the panel was shown (true) or hidden (false). */
  protected onVisibilityChanged(_visible: boolean): void {
    // nothing by default
  }

  protected emitChanged(): void {
    if (!this._disposed) {
      this._changed.emit();
    }
  }

  /** Show `message` as the panel's error (null clears it), e.g. a refusal the panel itself found. */
  setError(message: string | null): void {
    this._error = message;
    this.emitChanged();
  }

  /**
   * Run one change at a time, labelled `label` while it runs, then refresh; true when it succeeded (its
   * error is shown otherwise, over whatever the refresh found).
   */
  protected async act(label: string, work: () => Promise<unknown>): Promise<boolean> {
    if (this._busy) {
      this.setError(`Wait until "${this._busy}" has finished, then try again.`);
      return false;
    }
    this._busy = label;
    this._error = null;
    this.emitChanged();
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
      this.setError(failure);
    }
    return failure === null;
  }

  private readonly _polling: StandbyPoll;
  private readonly _changed = new Signal<this, void>(this);
  private _error: string | null = null;
  private _busy: string | null = null;
  private _loaded = false;
  private _disposed = false;
}
