import { AidevopsApi, Job, RunSummary, Schedule } from '../common/api';
import { chipTitle, relativeTime, whyLines } from '../runs/format';
import { describeJob, failedStep, knownPipelines, parseParams, runFromBlocked, RunsModel } from '../runs/model';
import { jobAnswer } from './apifixtures';
import { fakeFetcher, ICall, refusal, Route } from './fake';
import { run, schedule } from './runs-fixtures';
import { expectPollsOnlyWhileVisible, useFakeClock } from './support';

function setup(extra: Record<string, Route> = {}) {
  let runs: RunSummary[] = [run('r1', 'succeeded', { prepare: 'ran', train: 'ran' })];
  const { fetcher, calls } = fakeFetcher({
    'GET aidevops/api/runs': () => ({ status: 200, body: { runs } }),
    ...extra
  });
  // A fixed clock: relative times are computed against the time of the last answer, never the wall clock.
  const model = new RunsModel(new AidevopsApi(fetcher), 20, () => Date.parse('2026-12-06T01:00:00Z'));
  return { model, calls, setRuns: (r: RunSummary[]) => (runs = r) };
}

const runsCalls = (calls: ICall[]) => calls.filter(c => c.path.startsWith('aidevops/api/runs?'));

/** The job of `run ci -p model="nope"`, in `status`. */
const job = (status: string, extra: Partial<Job> = {}) =>
  jobAnswer({ argv: ['run', 'ci', '-p', 'model="nope"'], pid: 9, status, ...extra });

describe('RunsModel', () => {
  useFakeClock();

  it('polls the runs once per interval only while visible', async () => {
    const firstPoll = (model: RunsModel) => expect(model.view.runs.map(r => r.run_id)).toEqual(['r1']);
    await expectPollsOnlyWhileVisible(setup(), calls => runsCalls(calls).length, firstPoll); // interval: 20 ms
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
        setRuns([
          run('r2', 'failed', { prepare: 'cached', train: 'failed' }),
          run('r1', 'succeeded', { prepare: 'ran', train: 'ran' })
        ]);
        return {
          status: 200,
          body: { ...job('failed', { exit_code: 1, run_id: 'r2' }), log_tail: ['train failed'], run: null }
        };
      }
    });
    model.visible = true;
    expect(await model.startRun('ci', { model: 'nope' })).toBeNull();
    expect(calls.find(c => c.method === 'POST')?.body).toEqual({ pipeline: 'ci', params: { model: 'nope' } });
    expect(polls).toBe(1); // followed at once, not at the next tick
    await jest.advanceTimersByTimeAsync(60);
    expect(polls).toBe(3); // then once per poll, until it ends
    expect(model.view.job?.status).toBe('failed');
    expect(model.view.job?.log_tail).toEqual(['train failed']);
    expect(model.view.runs[0].run_id).toBe('r2');
    await jest.advanceTimersByTimeAsync(1000);
    expect(polls).toBe(3); // a finished job is not polled again
    expect(await model.rerun('r2', {})).toBe('no route POST aidevops/api/runs/r2/rerun'); // the fake's 404 sentence
    expect(model.error).toBeNull(); // a dialog's refusal is the dialog's, not the panel's
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
    expect(await model.startRun('ci', { epochs: 'x' })).toBe(
      "parameter 'epochs' expects an integer (default 8), got 'x'."
    );
    expect(model.view.job).toBeNull();
    expect(await model.startRun('ci', {})).toBeNull();
    expect(await model.startRun('ci', {})).toMatch(/^Job j1 \(run ci\) is still running/);
    model.dispose();
  });

  it('runs from a step after its confirmation: POST rerun with from_step, the job followed, the details closed', async () => {
    const { model, calls } = setup({
      'POST aidevops/api/runs/r1/rerun': () => ({
        status: 202,
        body: { job: job('running', { argv: ['run', 'ci', '--from', 'train', '--force'] }) }
      }),
      'GET aidevops/api/jobs/j1': () => ({
        status: 200,
        body: {
          ...job('running', { argv: ['run', 'ci', '--from', 'train', '--force'] }),
          log_tail: ['▶ train'],
          run: null
        }
      })
    });
    await model.refresh();
    model.toggleStep('r1', 'train');
    expect(model.view.open).toEqual({ runId: 'r1', step: 'train', confirming: false, error: null });
    expect(calls.filter(c => c.method === 'POST')).toHaveLength(0); // opening the details asks nothing
    model.askRunFrom();
    expect(model.view.open?.confirming).toBe(true);
    model.cancelRunFrom();
    expect(model.view.open).toEqual({ runId: 'r1', step: 'train', confirming: false, error: null }); // cancelled: nothing posted
    expect(calls.filter(c => c.method === 'POST')).toHaveLength(0);
    model.askRunFrom();
    expect(await model.confirmRunFrom()).toBe(true);
    expect(calls.filter(c => c.method === 'POST').map(c => [c.path, c.body])).toEqual([
      ['aidevops/api/runs/r1/rerun', { from_step: 'train' }]
    ]);
    expect(model.view.open).toBeNull();
    expect(model.view.job?.log_tail).toEqual(['▶ train']); // followed at once
    expect(describeJob(model.view.job!)).toBe('run ci --from train --force');
    model.dispose();
  });

  it('keeps a refused run from here open with the server sentence, and one open step at a time', async () => {
    const { model } = setup({
      'POST aidevops/api/runs/r1/rerun': refusal(400, "pipeline 'ci' has no step 'train'; its steps are: prepare.")
    });
    await model.refresh();
    model.toggleStep('r1', 'prepare');
    model.toggleStep('r1', 'train'); // another chip: the first closes
    expect(model.view.open?.step).toBe('train');
    model.askRunFrom();
    expect(await model.confirmRunFrom()).toBe(false);
    expect(model.view.open).toEqual({
      runId: 'r1',
      step: 'train',
      confirming: true,
      error: "pipeline 'ci' has no step 'train'; its steps are: prepare."
    });
    expect(model.error).toBeNull();
    model.toggleStep('r1', 'train'); // the same chip again: closed
    expect(model.view.open).toBeNull();
    model.dispose();
  });

  it('keeps an open step and the picked runs across polls, and drops them when their run is gone', async () => {
    const { model, setRuns } = setup();
    setRuns([run('r2', 'succeeded', { prepare: 'ran' }), run('r1', 'succeeded', { prepare: 'ran' })]);
    await model.refresh();
    model.toggleStep('r1', 'prepare');
    model.askRunFrom();
    model.toggleSelected('r1');
    await model.refresh();
    expect(model.view.open).toEqual({ runId: 'r1', step: 'prepare', confirming: true, error: null });
    expect(model.view.selected).toEqual(['r1']);
    setRuns([run('r2', 'succeeded', { prepare: 'ran' })]);
    await model.refresh();
    expect(model.view.open).toBeNull();
    expect(model.view.selected).toEqual([]);
    model.dispose();
  });

  it('lists schedules; a server without them (404) hides the section and is not asked again', async () => {
    let asked = 0;
    const schedules: Schedule[] = [
      schedule('nightly', { last_run: '2026-12-05T03:00:00+00:00', last_status: 'succeeded', last_run_id: 'r1' })
    ];
    const withApi = setup({ 'GET aidevops/api/schedules': () => ({ status: 200, body: { schedules } }) });
    await withApi.model.refresh();
    expect(withApi.model.view.schedules).toEqual(schedules);
    expect(withApi.model.view.now).toBe(Date.parse('2026-12-06T01:00:00Z'));
    withApi.model.dispose();

    const older = setup({
      'GET aidevops/api/schedules': () => {
        asked++;
        return { status: 404, body: { error: 'Not Found' } };
      }
    });
    await older.model.refresh();
    await older.model.refresh();
    expect(older.model.view.schedules).toBeNull();
    expect(older.model.error).toBeNull(); // the runs are fine
    expect(asked).toBe(1);
    older.model.dispose();
  });

  it('shows a failed schedules request in the section without failing the runs', async () => {
    const { model } = setup({
      'GET aidevops/api/schedules': refusal(400, 'schedules.yaml is not valid YAML; fix or remove it.')
    });
    await model.refresh();
    expect(model.view.runs).toHaveLength(1);
    expect(model.error).toBeNull();
    expect(model.view.schedulesError).toBe('schedules.yaml is not valid YAML; fix or remove it.');
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
    expect(model.view.job?.status).toBe('unknown');
    expect(model.view.job?.message).toBe("there is no job 'j1' in /ws/.aidevops/jobs.");
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
    expect(model.view.selected).toEqual(['r1', 'r2']);
    model.toggleSelected('r1');
    expect(model.view.selected).toEqual(['r2']);
    setRuns([run('r3', 'succeeded', {})]);
    await model.refresh();
    expect(model.view.selected).toEqual([]); // a run that is gone is not kept picked
    model.dispose();
  });
});

describe('run helpers', () => {
  it('parses params as a JSON object or says what is wrong', () => {
    expect(parseParams('')).toEqual({ params: {} });
    expect(parseParams(' {"epochs": 4, "train.l2": 0.1} ')).toEqual({ params: { epochs: 4, 'train.l2': 0.1 } });
    expect(parseParams('[1]')).toEqual({
      error: 'The params must be a JSON object such as {"epochs": 4}, not a list.'
    });
    expect(parseParams('4')).toEqual({ error: 'The params must be a JSON object such as {"epochs": 4}, not number.' });
    const bad = parseParams('{epochs: 4}');
    expect('error' in bad && bad.error).toMatch(
      /^The params are not valid JSON \(.+\); write an object such as \{"epochs": 4\}\.$/
    );
  });

  it('finds the failed step, the known pipelines and describes a job', () => {
    expect(failedStep(run('r1', 'failed', { prepare: 'cached', train: 'failed', evaluate: 'pending' }))).toBe('train');
    expect(failedStep(run('r1', 'succeeded', { prepare: 'ran' }))).toBeNull();
    expect(
      knownPipelines([run('a', 'x', {}), { ...run('b', 'x', {}), pipeline: 'default' }, run('c', 'x', {})])
    ).toEqual(['ci', 'default']);
    expect(describeJob(job('running') as any)).toBe('run ci');
  });

  it('says why run from here cannot start now', () => {
    const done = run('r1', 'succeeded', { prepare: 'ran' });
    expect(runFromBlocked(done, null, null)).toBeNull();
    expect(runFromBlocked(done, null, job('succeeded') as any)).toBeNull();
    expect(runFromBlocked(done, null, job('running') as any)).toBe(
      'Job j1 (run ci) is still running; wait until it ends.'
    );
    expect(runFromBlocked(done, 'Starting pipeline ci…', null)).toBe(
      'Wait until "Starting pipeline ci…" has finished.'
    );
    expect(runFromBlocked(run('r2', 'running', { prepare: 'running' }), null, null)).toBe(
      'This run is still running; wait until it ends.'
    );
    expect(runFromBlocked({ ...done, pipeline: null }, null, null)).toMatch(/does not name its pipeline/);
  });

  it('words times relative to a given now', () => {
    const now = Date.parse('2026-12-06T01:00:00Z');
    expect(relativeTime('2026-12-06T03:00:00+00:00', now)).toBe('in 2 h');
    expect(relativeTime('2026-12-06T00:57:00Z', now)).toBe('3 min ago');
    expect(relativeTime('2026-12-06T01:00:30Z', now)).toBe('in 30 s');
    expect(relativeTime('2026-12-06T01:00:02Z', now)).toBe('now');
    expect(relativeTime('2026-12-06T02:20:00Z', now)).toBe('in 80 min');
    expect(relativeTime('2026-12-03T01:00:00Z', now)).toBe('3 d ago');
    expect(relativeTime(null, now)).toBe('');
    expect(relativeTime('not a time', now)).toBe('');
  });

  it("puts a step's why in its tooltip, one line each", () => {
    const step = {
      status: 'ran',
      error: null,
      cache: 'miss',
      why: ['against run r0: param seed: 0 → 1', ' ', 'against run r0: code cell 2 changed']
    };
    expect(whyLines(step)).toEqual(['against run r0: param seed: 0 → 1', 'against run r0: code cell 2 changed']);
    expect(chipTitle('train', step, 'open')).toBe(
      'train: ran (cache miss)\nwhy: against run r0: param seed: 0 → 1\nwhy: against run r0: code cell 2 changed\nclick to open its executed notebook'
    );
    expect(chipTitle('prepare', { status: null, error: null }, 'none')).toBe('prepare: pending');
  });
});

describe('Runs API calls', () => {
  it('posts runs, re-runs (from a step too), asks for diffs and schedules on the contract paths', async () => {
    const job = { id: 'j', kind: 'run' };
    const { fetcher, calls } = fakeFetcher({
      'POST aidevops/api/runs': () => ({ status: 202, body: { job } }),
      'POST aidevops/api/runs/r1/rerun': () => ({ status: 202, body: { job } }),
      'GET aidevops/api/diff': () => ({ status: 200, body: { base: 'a' } }),
      'GET aidevops/api/jobs': () => ({ status: 200, body: { jobs: [job] } }),
      'GET aidevops/api/schedules': () => ({ status: 200, body: { schedules: [schedule('nightly')] } })
    });
    const api = new AidevopsApi(fetcher);
    await api.startRun('ci', { epochs: 2 });
    await expect(api.rerun('r 1')).rejects.toThrow('no route POST aidevops/api/runs/r%201/rerun');
    expect(await api.rerun('r1', { seed: 2 })).toEqual(job);
    expect(await api.rerun('r1', undefined, 'train')).toEqual(job);
    await api.diff('a', 'b&c', 'train');
    expect(await api.listJobs(5)).toEqual([job]);
    expect((await api.schedules()).map(s => s.name)).toEqual(['nightly']);
    expect(calls.map(c => [c.method, c.path, c.body])).toEqual([
      ['POST', 'aidevops/api/runs', { pipeline: 'ci', params: { epochs: 2 } }],
      ['POST', 'aidevops/api/runs/r%201/rerun', {}],
      ['POST', 'aidevops/api/runs/r1/rerun', { params: { seed: 2 } }],
      ['POST', 'aidevops/api/runs/r1/rerun', { from_step: 'train' }],
      ['GET', 'aidevops/api/diff?base=a&remote=b%26c&step=train', undefined],
      ['GET', 'aidevops/api/jobs?limit=5', undefined],
      ['GET', 'aidevops/api/schedules', undefined]
    ]);
  });
});
