import { AidevopsApi, RunSummary } from '../common/api';
import { describeJob, failedStep, knownPipelines, parseParams, RunsModel } from '../runs/model';
import { fakeFetcher, Route } from './fake';
import { run } from './runs-fixtures';

function setup(extra: Record<string, Route> = {}) {
  let runs: RunSummary[] = [run('r1', 'succeeded', { prepare: 'ran', train: 'ran' })];
  const { fetcher, calls } = fakeFetcher({
    'GET aidevops/api/runs': () => ({ status: 200, body: { runs } }),
    ...extra
  });
  const model = new RunsModel(new AidevopsApi(fetcher), 20);
  return { model, calls, setRuns: (r: RunSummary[]) => (runs = r) };
}

const job = (status: string, extra: Record<string, unknown> = {}) => ({
  id: 'j1', kind: 'run', argv: ['run', 'ci', '-p', 'model="nope"'], started: 1, finished: null, pid: 9, status, exit_code: null,
  pipeline: 'ci', deployment: null, run_id: null, message: '', ...extra
});

describe('RunsModel', () => {
  // The poll schedules itself with setTimeout: on jest's fake clock every tick is counted exactly and no real time passes.
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('polls once per interval only while visible', async () => {
    const { model, calls } = setup(); // interval: 20 ms
    await jest.advanceTimersByTimeAsync(1000);
    expect(calls).toHaveLength(0); // never shown: no request at all
    model.visible = true;
    await jest.advanceTimersByTimeAsync(0);
    expect(calls).toHaveLength(1); // shown: the first refresh at once
    expect(model.runs.map(r => r.run_id)).toEqual(['r1']);
    await jest.advanceTimersByTimeAsync(19);
    expect(calls).toHaveLength(1); // not before the interval is up
    await jest.advanceTimersByTimeAsync(1);
    expect(calls).toHaveLength(2);
    await jest.advanceTimersByTimeAsync(100);
    expect(calls).toHaveLength(7); // one per interval
    model.visible = false;
    await jest.advanceTimersByTimeAsync(1000);
    expect(calls).toHaveLength(7); // standby: no request while hidden, however long
    model.dispose();
  });

  it('starts a run, follows its job until it ends, and refreshes the runs', async () => {
    let polls = 0;
    const { model, calls, setRuns } = setup({
      'POST aidevops/api/runs': () => ({ status: 202, body: { job: job('running') } }),
      'GET aidevops/api/jobs/j1': () => {
        polls++;
        if (polls < 3) {
          return { status: 200, body: { ...job('running'), log_tail: [`line ${polls}`], run: null } };
        }
        setRuns([run('r2', 'failed', { prepare: 'cached', train: 'failed' }), run('r1', 'succeeded', { prepare: 'ran', train: 'ran' })]);
        return { status: 200, body: { ...job('failed', { exit_code: 1, run_id: 'r2' }), log_tail: ['train failed'], run: null } };
      }
    });
    model.visible = true;
    expect(await model.startRun('ci', { model: 'nope' })).toBeNull();
    expect(calls.find(c => c.method === 'POST')?.body).toEqual({ pipeline: 'ci', params: { model: 'nope' } });
    await jest.advanceTimersByTimeAsync(0);
    expect(polls).toBe(1); // followed at once, not at the next tick
    await jest.advanceTimersByTimeAsync(40);
    expect(polls).toBe(3); // then once per interval, until it ends
    expect(model.job?.status).toBe('failed');
    expect(model.job?.log_tail).toEqual(['train failed']);
    expect(model.runs[0].run_id).toBe('r2');
    await jest.advanceTimersByTimeAsync(1000);
    expect(polls).toBe(3); // a finished job is not polled again
    expect(await model.rerun('r2', {})).toBe("no route POST aidevops/api/runs/r2/rerun"); // the fake's 404 sentence
    model.dispose();
  });

  it('returns the server sentence when a start is refused, and refuses a second job while one runs', async () => {
    const { model } = setup({
      'POST aidevops/api/runs': call =>
        call.body.params.epochs === 'x'
          ? { status: 400, body: { error: "parameter 'epochs' expects an integer (default 8), got 'x'." } }
          : { status: 202, body: { job: job('running') } },
      'GET aidevops/api/jobs/j1': () => ({ status: 200, body: { ...job('running'), log_tail: [], run: null } })
    });
    expect(await model.startRun('ci', { epochs: 'x' })).toBe("parameter 'epochs' expects an integer (default 8), got 'x'.");
    expect(model.job).toBeNull();
    expect(await model.startRun('ci', {})).toBeNull();
    expect(await model.startRun('ci', {})).toMatch(/^Job j1 \(run ci\) is still running/);
    model.dispose();
  });

  it('emits changed only when something shown changed', async () => {
    const { model, setRuns } = setup();
    let emitted = 0;
    model.changed.connect(() => emitted++);
    await model.refresh();
    expect(emitted).toBe(1);
    await model.refresh();
    expect(emitted).toBe(1); // the same answer: no re-render
    setRuns([run('r2', 'running', { prepare: 'running' }), run('r1', 'succeeded', { prepare: 'ran', train: 'ran' })]);
    await model.refresh();
    expect(emitted).toBe(2);
    model.dispose();
  });

  it('stops following a job the server no longer knows, with its sentence', async () => {
    let polls = 0;
    const { model } = setup({
      'POST aidevops/api/runs': () => ({ status: 202, body: { job: job('running') } }),
      'GET aidevops/api/jobs/j1': () => {
        polls++;
        return { status: 400, body: { error: "there is no job 'j1' in /ws/.aidevops/jobs." } };
      }
    });
    expect(await model.startRun('ci', {})).toBeNull();
    await model.refresh();
    expect(model.job?.status).toBe('unknown');
    expect(model.job?.message).toBe("there is no job 'j1' in /ws/.aidevops/jobs.");
    expect(model.error).toBeNull(); // the runs still refreshed
    await model.refresh();
    expect(polls).toBe(1);
    model.dispose();
  });

  it('keeps at most two picked runs and diffs older → newer', async () => {
    const { model, setRuns } = setup();
    setRuns([run('r3', 'succeeded', {}), run('r2', 'succeeded', {}), run('r1', 'succeeded', {})]);
    await model.refresh();
    expect(model.diffPair()).toBeNull();
    model.toggleSelected('r3');
    model.toggleSelected('r1');
    expect(model.diffPair()).toEqual(['r1', 'r3']);
    model.toggleSelected('r2');
    expect(model.selected).toEqual(['r1', 'r2']);
    model.toggleSelected('r1');
    expect(model.selected).toEqual(['r2']);
    setRuns([run('r3', 'succeeded', {})]);
    await model.refresh();
    expect(model.selected).toEqual([]); // a run that is gone is not kept picked
    model.dispose();
  });
});

describe('run helpers', () => {
  it('parses params as a JSON object or says what is wrong', () => {
    expect(parseParams('')).toEqual({ params: {} });
    expect(parseParams(' {"epochs": 4, "train.l2": 0.1} ')).toEqual({ params: { epochs: 4, 'train.l2': 0.1 } });
    expect(parseParams('[1]')).toEqual({ error: 'The params must be a JSON object such as {"epochs": 4}, not a list.' });
    expect(parseParams('4')).toEqual({ error: 'The params must be a JSON object such as {"epochs": 4}, not number.' });
    const bad = parseParams('{epochs: 4}');
    expect('error' in bad && bad.error).toMatch(/^The params are not valid JSON \(.+\); write an object such as \{"epochs": 4\}\.$/);
  });

  it('finds the failed step, the known pipelines and describes a job', () => {
    expect(failedStep(run('r1', 'failed', { prepare: 'cached', train: 'failed', evaluate: 'pending' }))).toBe('train');
    expect(failedStep(run('r1', 'succeeded', { prepare: 'ran' }))).toBeNull();
    expect(knownPipelines([run('a', 'x', {}), { ...run('b', 'x', {}), pipeline: 'default' }, run('c', 'x', {})])).toEqual(['ci', 'default']);
    expect(describeJob(job('running') as any)).toBe('run ci');
  });
});

describe('Runs API calls', () => {
  it('posts runs, re-runs and asks for diffs on the contract paths', async () => {
    const job = { id: 'j', kind: 'run' };
    const { fetcher, calls } = fakeFetcher({
      'POST aidevops/api/runs': () => ({ status: 202, body: { job } }),
      'POST aidevops/api/runs/r1/rerun': () => ({ status: 202, body: { job } }),
      'GET aidevops/api/diff': () => ({ status: 200, body: { base: 'a' } }),
      'GET aidevops/api/jobs': () => ({ status: 200, body: { jobs: [job] } })
    });
    const api = new AidevopsApi(fetcher);
    await api.startRun('ci', { epochs: 2 });
    await expect(api.rerun('r 1')).rejects.toThrow('no route POST aidevops/api/runs/r%201/rerun');
    expect(await api.rerun('r1', { seed: 2 })).toEqual(job);
    await api.diff('a', 'b&c', 'train');
    expect(await api.listJobs(5)).toEqual([job]);
    expect(calls.map(c => [c.method, c.path, c.body])).toEqual([
      ['POST', 'aidevops/api/runs', { pipeline: 'ci', params: { epochs: 2 } }],
      ['POST', 'aidevops/api/runs/r%201/rerun', {}],
      ['POST', 'aidevops/api/runs/r1/rerun', { params: { seed: 2 } }],
      ['GET', 'aidevops/api/diff?base=a&remote=b%26c&step=train', undefined],
      ['GET', 'aidevops/api/jobs?limit=5', undefined]
    ]);
  });
});
