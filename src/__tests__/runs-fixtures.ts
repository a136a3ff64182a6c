/** Run summaries and schedules for the Runs panel's unit tests. */

import { RunSummary, Schedule } from '../common/api';

export function run(
  id: string,
  status: string,
  steps: Record<string, string>,
  extra: Partial<RunSummary> = {}
): RunSummary {
  return {
    run_id: id,
    pipeline: 'ci',
    status,
    started: `2026-12-05T06:0${id.slice(-1)}:00+00:00`,
    finished: null,
    duration_s: 1.5,
    steps: Object.keys(steps).reduce<RunSummary['steps']>((out, k) => {
      const v = steps[k];
      out[k] = {
        status: v,
        error: v === 'failed' ? 'ConfigError: no model kind' : null,
        cache: v === 'cached' ? 'hit' : 'miss',
        duration_s: 0.5,
        why:
          v === 'cached'
            ? ['cached: reused the output of run r0']
            : v === 'ran'
              ? ['against run r0: param seed: 0 → 1', 'against run r0: code cell 2 changed']
              : []
      };
      return out;
    }, {}),
    notebooks: Object.keys(steps).map(k => ({ step: k, name: `${k}.ipynb`, available: true, status: steps[k] })),
    overrides: {},
    params: { seed: 0 },
    resumed_from: null,
    ...extra
  };
}

export function schedule(name: string, extra: Partial<Schedule> = {}): Schedule {
  return {
    name,
    pipeline: 'ci',
    cron: '0 3 * * *',
    params: {},
    notify: null,
    next_run: '2026-12-06T03:00:00+00:00',
    last_run: null,
    last_status: null,
    last_run_id: null,
    ...extra
  };
}
