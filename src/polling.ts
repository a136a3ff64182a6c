/**
 * What the three panels' models share: a @lumino/polling Poll that only runs while its panel is shown
 * (StandbyPoll), and the sentence an error becomes for the user (errorMessage).
 */

import { Poll } from '@lumino/polling';

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
