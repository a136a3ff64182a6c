/** Run summaries for the Runs panel's unit tests. */

import { RunSummary } from '../common/api';

export function run(id: string, status: string, steps: Record<string, string>, extra: Partial<RunSummary> = {}): RunSummary {
  return {
    run_id: id, pipeline: 'ci', status, started: `2026-12-05T06:0${id.slice(-1)}:00+00:00`, finished: null, duration_s: 1.5,
    steps: Object.keys(steps).reduce<RunSummary['steps']>((out, k) => {
      const v = steps[k];
      out[k] = { status: v, error: v === 'failed' ? 'ConfigError: no model kind' : null, cache: v === 'cached' ? 'hit' : 'miss', duration_s: 0.5 };
      return out;
    }, {}),
    notebooks: Object.keys(steps).map(k => ({ step: k, name: `${k}.ipynb`, available: true, status: steps[k] })),
    overrides: {}, params: { seed: 0 }, resumed_from: null, ...extra
  };
}
