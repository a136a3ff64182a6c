import { AidevopsApi, Deployment } from '../common/api';
import { MonitorModel, runIdOf } from '../monitor/model';
import { fakeFetcher, refusal, Route } from './fake';
import { deployment, retrainJob, series, summary } from './monitorfixtures';
import { expectPollsOnlyWhileVisible, expectRefusedRefresh, useFakeClock } from './support';

function setup(extra: Record<string, Route> = {}) {
  let deployments = [deployment('mon'), deployment('old', 'stopped')];
  const routes: Record<string, Route> = {
    'GET aidevops/api/deployments': () => ({ status: 200, body: { deployments } }),
    'GET aidevops/api/deployments/mon/monitor': () => ({ status: 200, body: summary() }),
    'GET aidevops/api/deployments/mon/series': () => ({ status: 200, body: series() }),
    'GET aidevops/api/deployments/old/alerts': () => ({
      status: 200,
      body: {
        alerts: [{ rule: 'errors', state: 'resolved', since: 5, value: 0, features: [] }],
        events: [{ id: 9, deployment: 'old', rule: 'errors', event: 'resolved', at: 5, value: 0 }]
      }
    }),
    ...extra
  };
  const { fetcher, calls } = fakeFetcher(routes);
  const model = new MonitorModel(new AidevopsApi(fetcher), 20, 10);
  return { model, calls, setDeployments: (d: Deployment[]) => (deployments = d) };
}

const count = (calls: { path: string }[], part: string) => calls.filter(c => c.path.includes(part)).length;

describe('MonitorModel', () => {
  useFakeClock(); // the poll and the job follower

  it('polls once per interval only while visible, and refreshes at once when shown again', async () => {
    await expectPollsOnlyWhileVisible(setup(), calls => count(calls, '/monitor')); // interval: 20 ms
  });

  it('picks the first live deployment and reads its summary, series and alerts (events newest first)', async () => {
    const { model, calls } = setup();
    await model.refresh();
    expect(model.view.selected).toBe('mon');
    expect(model.view.summary?.logged_rows).toBe(1234);
    expect(model.view.series?.requests.rate).toEqual([50, 0, 61.5]);
    expect(model.view.alerts.map(a => a.rule)).toEqual(['errors', 'feature-drift']);
    expect(model.view.events.map(e => e.id)).toEqual([2, 1]);
    expect(calls.find(c => c.path.includes('/series'))?.path).toBe(
      'aidevops/api/deployments/mon/series?minutes=10&buckets=120'
    );
    model.dispose();
  });

  it('shows a stopped deployment through GET alerts, without monitor calls', async () => {
    const { model, calls } = setup();
    await model.refresh();
    model.select('old');
    await model.refresh();
    expect(model.view.summary).toBeNull();
    expect(model.view.series).toBeNull();
    expect(model.view.alerts.map(a => a.state)).toEqual(['resolved']);
    expect(model.view.events.map(e => e.id)).toEqual([9]);
    expect(calls.some(c => c.path.startsWith('aidevops/api/deployments/old/monitor'))).toBe(false);
    model.dispose();
  });

  it('falls back to the alerts when the monitor answers 409 (the deployment just stopped)', async () => {
    const { model } = setup({
      'GET aidevops/api/deployments/mon/monitor': refusal(409, "Deployment 'mon' is not running."),
      'GET aidevops/api/deployments/mon/alerts': () => ({ status: 200, body: { alerts: [], events: [] } })
    });
    await model.refresh();
    expect(model.error).toBeNull();
    expect(model.view.summary).toBeNull();
    model.dispose();
  });

  it('reports a failing refresh in words', () =>
    expectRefusedRefresh(setup, 'deployments/mon/series', 'buckets must be an integer between 1 and 1000, got 0.'));

  it('retrains: POSTs once, follows the job until it ends, then names the run it produced', async () => {
    let polls = 0;
    const { model, calls } = setup({
      'POST aidevops/api/deployments/mon/retrain': () => ({
        status: 202,
        body: { job: retrainJob() }
      }),
      'GET aidevops/api/jobs/j1': () => {
        polls++;
        const done = polls >= 3;
        return {
          status: 200,
          body: {
            ...retrainJob({
              finished: done ? 9 : null,
              status: done ? 'succeeded' : 'running',
              exit_code: done ? 0 : null,
              run_id: done ? 'r-42' : null,
              message: done ? 'retraining #1 of mon: switched (pipeline run r-42): mon switched from v1 to v3' : ''
            }),
            log_tail: [`step ${polls}`],
            run: null
          }
        };
      }
    });
    await model.refresh();
    model.visible = true;
    const started = model.retrain();
    expect(model.retraining).toBe(true);
    expect(await model.retrain()).toBe(false); // one at a time
    expect(await started).toBe(true);
    await jest.advanceTimersByTimeAsync(0);
    expect(polls).toBe(1); // the job is read at once
    await jest.advanceTimersByTimeAsync(9);
    expect(polls).toBe(1); // then once per job interval (10 ms)
    await jest.advanceTimersByTimeAsync(11);
    expect(polls).toBe(3);
    expect(model.view.job?.status).toBe('succeeded');
    expect(model.view.job?.log_tail).toEqual(['step 3']);
    expect(runIdOf(model.view.job)).toBe('r-42');
    expect(model.retraining).toBe(false);
    expect(calls.filter(c => c.method === 'POST')).toHaveLength(1);
    expect(calls.filter(c => c.method === 'POST')[0].body).toEqual({ reason: 'retrain now, from the Monitor panel' });
    await jest.advanceTimersByTimeAsync(1000);
    expect(polls).toBe(3); // following stops once the job has ended
    model.dispose();
  });

  it('keeps a refused retrain as its error', async () => {
    const { model } = setup({
      'POST aidevops/api/deployments/mon/retrain': refusal(
        400,
        "no pipeline in /x/pipelines registers 'ci-digits', so 'mon' cannot be retrained."
      )
    });
    await model.refresh();
    expect(await model.retrain()).toBe(false);
    expect(model.view.jobError).toMatch(/cannot be retrained/);
    expect(model.retraining).toBe(false);
    model.dispose();
  });
});

describe('runIdOf', () => {
  const job = retrainJob({ finished: 1, status: 'succeeded', exit_code: 0 });
  it('reads the run id from the job, its run, or the CLI line', () => {
    expect(runIdOf(null)).toBeNull();
    expect(runIdOf({ ...job, run_id: 'a' })).toBe('a');
    expect(runIdOf({ ...job, log_tail: [], run: { run_id: 'b' } as any })).toBe('b');
    expect(
      runIdOf({
        ...job,
        message: 'retraining #2 of d: gate failed (pipeline run 20261205-0612-ab12): v3 failed the gate'
      })
    ).toBe('20261205-0612-ab12');
    expect(runIdOf({ ...job, message: 'exit 1' })).toBeNull();
  });
});
