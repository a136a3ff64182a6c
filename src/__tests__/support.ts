/**
 * What the panel models' specs share: jest's fake clock around each test, the StandbyPoll contract every
 * PolledModel keeps, and a refresh that fails with the server's sentence. (Not a spec: jest runs only
 * *.spec.ts, see jest.config.js.)
 */

import { PolledModel } from '../common/polledmodel';
import { ICall, refusal, Route } from './fake';

/**
 * jest's fake clock in every test of the calling describe(): polls and followers schedule themselves with
 * setTimeout, so every tick is counted exactly and no real time passes.
 */
export function useFakeClock(): void {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());
}

/** A model under test over a fake fetcher: what a spec's setup() returns. */
interface IModelSetup<M extends PolledModel<object>> {
  model: M;
  calls: ICall[];
}

/**
 * A model built with a 20 ms interval polls only while its panel is shown: no request before it is first
 * shown, a poll at once when shown and then one per interval, no request at all while hidden, and a poll
 * at once when shown again. `polls` counts the model's poll requests among all the requests made;
 * `afterFirst` checks what the first poll left. Disposes the model.
 */
export async function expectPollsOnlyWhileVisible<M extends PolledModel<object>>(
  { model, calls }: IModelSetup<M>,
  polls: (calls: ICall[]) => number,
  afterFirst: (model: M) => void = () => undefined
): Promise<void> {
  await jest.advanceTimersByTimeAsync(1000);
  expect(calls).toHaveLength(0); // never shown: no request at all
  model.visible = true;
  await jest.advanceTimersByTimeAsync(0);
  expect(polls(calls)).toBe(1); // shown: the first refresh at once
  afterFirst(model);
  await jest.advanceTimersByTimeAsync(19);
  expect(polls(calls)).toBe(1); // not before the interval is up
  await jest.advanceTimersByTimeAsync(1);
  expect(polls(calls)).toBe(2);
  await jest.advanceTimersByTimeAsync(100);
  expect(polls(calls)).toBe(7); // one per interval: 20 ms, 40 ms, ..., 120 ms after the first
  model.visible = false;
  const hiddenAt = calls.length;
  await jest.advanceTimersByTimeAsync(1000);
  expect(calls).toHaveLength(hiddenAt); // standby: no request while hidden, however long
  model.visible = true;
  await jest.advanceTimersByTimeAsync(0);
  expect(polls(calls)).toBe(8); // shown again: refreshed at once, not at the next interval
  model.dispose();
}

/**
 * A refresh whose GET of `path` (under aidevops/api/) is refused rejects, so that the poll backs off, and
 * shows the server's sentence as the model's error. `setup` builds the model over extra routes.
 */
export async function expectRefusedRefresh(
  setup: (routes: Record<string, Route>) => IModelSetup<PolledModel<object>>,
  path: string,
  sentence: string
): Promise<void> {
  const { model } = setup({ [`GET aidevops/api/${path}`]: refusal(400, sentence) });
  await expect(model.refresh()).rejects.toThrow();
  expect(model.error).toBe(sentence);
  model.dispose();
}
