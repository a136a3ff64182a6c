/**
 * @jest-environment jsdom
 *
 * The Runs panel's React view: the DOM contract the browser tests read, a step's why and "Run from here"
 * with its inline confirmation, the schedules, and the state that must survive a re-render with a new answer.
 */

import * as React from 'react';

import { renderDiffHeader } from '../runs/diffheader';
import { formatDuration } from '../runs/format';
import { IOpenStep, IRunsViewState } from '../runs/model';
import { IRunsActions, RunsView, SCHEDULE_HINT } from '../runs/view';
import { jobAnswer } from './apifixtures';
import { mount } from './reactdom';
import { run, schedule } from './runs-fixtures';

function actions(): IRunsActions & { log: string[] } {
  const log: string[] = [];
  return {
    log,
    refresh: () => log.push('refresh'),
    toggleSelected: id => log.push(`toggle ${id}`),
    diff: () => log.push('diff'),
    runPipeline: () => log.push('runPipeline'),
    rerun: r => log.push(`rerun ${r.run_id}`),
    openNotebook: (id, step, name) => log.push(`open ${id} ${step} ${name}`),
    dismissJob: () => log.push('dismiss'),
    toggleStep: (id, step) => log.push(`step ${id} ${step}`),
    askRunFrom: () => log.push('ask'),
    cancelRunFrom: () => log.push('cancel'),
    confirmRunFrom: () => log.push('confirm')
  };
}

const runs = [
  run('r3', 'running', { prepare: 'cached', train: 'running', evaluate: 'pending' }),
  run(
    'r2',
    'failed',
    { prepare: 'cached', train: 'failed', evaluate: 'pending' },
    { overrides: { model: 'nope', 'train.l2': 0.1 }, params: { model: 'nope', seed: 0 } }
  ),
  run('r1', 'succeeded', { prepare: 'ran', train: 'ran', evaluate: 'ran' }, { overrides: { seed: 1 } })
];

const NOW = Date.parse('2026-12-06T01:00:00Z');

function state(extra: Partial<IRunsViewState> = {}): IRunsViewState {
  return {
    runs,
    selected: [],
    job: null,
    error: null,
    busy: null,
    loaded: true,
    open: null,
    schedules: null,
    schedulesError: null,
    now: NOW,
    ...extra
  };
}

function view(s: IRunsViewState, a: IRunsActions) {
  return React.createElement(RunsView, { state: s, actions: a });
}

const click = (el: Element | null) => React.act(() => (el as HTMLElement).click());

describe('Runs panel view', () => {
  it('lists runs newest first with status, step chips and the data attributes tests rely on', () => {
    const a = actions();
    const { node } = mount(view(state(), a));
    const rows = Array.from(node.querySelectorAll('[data-run-id]'));
    expect(rows.map(r => [r.getAttribute('data-run-id'), r.getAttribute('data-status')])).toEqual([
      ['r3', 'running'],
      ['r2', 'failed'],
      ['r1', 'succeeded']
    ]);
    const chips = Array.from(rows[1].querySelectorAll('[data-step]'));
    expect(chips.map(c => `${c.getAttribute('data-step')}=${c.getAttribute('data-step-status')}`)).toEqual([
      'prepare=cached',
      'train=failed',
      'evaluate=pending'
    ]);
    expect(chips[1].closest('.jp-aidevops-runs-step')?.classList.contains('jp-mod-failed')).toBe(true);
    expect(chips[0].textContent).toBe('prepare · cached · 0.50 s');
    expect(rows[1].querySelector('.jp-aidevops-runs-step-error')?.textContent).toBe(
      'train failed: ConfigError: no model kind'
    );
    click(chips[1]);
    expect(a.log).toEqual(['open r2 train train.ipynb']);
  });

  it("shows a step's why in its tooltip and, opened, as lines with Run from here", () => {
    const a = actions();
    const { node, render } = mount(view(state(), a));
    const train = node.querySelector('[data-run-id="r1"] [data-step="train"]') as HTMLElement;
    expect(train.title).toContain('why: against run r0: param seed: 0 → 1\nwhy: against run r0: code cell 2 changed');
    expect(node.querySelector('[data-run-id="r2"] [data-step="prepare"]')?.getAttribute('title')).toContain(
      'why: cached: reused the output of run r0'
    );
    expect(node.querySelector('[data-detail-step]')).toBeNull();
    click(node.querySelector('[data-run-id="r1"] [data-chip="train"] .jp-aidevops-runs-step-toggle'));
    expect(a.log).toEqual(['step r1 train']);
    const open: IOpenStep = { runId: 'r1', step: 'train', confirming: false, error: null };
    render(view(state({ open }), a));
    const detail = node.querySelector('[data-run-id="r1"] [data-detail-step="train"]') as HTMLElement;
    expect(Array.from(detail.querySelectorAll('.jp-aidevops-runs-why li')).map(li => li.textContent)).toEqual([
      'against run r0: param seed: 0 → 1',
      'against run r0: code cell 2 changed'
    ]);
    expect(
      node
        .querySelector('[data-run-id="r1"] [data-chip="train"] .jp-aidevops-runs-step-toggle')
        ?.getAttribute('aria-expanded')
    ).toBe('true');
    expect(node.querySelectorAll('[data-detail-step]')).toHaveLength(1); // only in its own run
    click(detail.querySelector('button.jp-aidevops-runs-from'));
    expect(a.log).toEqual(['step r1 train', 'ask']);
    expect(detail.querySelector('.jp-aidevops-runs-confirm')).toBeNull(); // no confirmation until the model says so
  });

  it('asks inline before running from here, names the params, and shows a refusal', () => {
    const a = actions();
    const open: IOpenStep = { runId: 'r1', step: 'train', confirming: true, error: null };
    const { node, render } = mount(view(state({ open }), a));
    const confirm = node.querySelector('[data-detail-step="train"] .jp-aidevops-runs-confirm') as HTMLElement;
    expect(confirm.textContent).toBe(
      "Run train and every step downstream of it again, with this run's params (seed=1)? The steps it needs come from the cache.Run from trainCancel"
    );
    expect(node.querySelector('button.jp-aidevops-runs-from')).toBeNull();
    click(confirm.querySelector('button.jp-aidevops-runs-confirm-ok'));
    click(confirm.querySelector('button.jp-aidevops-runs-confirm-cancel'));
    expect(a.log).toEqual(['confirm', 'cancel']);
    render(view(state({ open: { ...open, error: "pipeline 'ci' has no step 'train'." } }), a));
    expect(node.querySelector('.jp-aidevops-runs-confirm [role="alert"]')?.textContent).toBe(
      "pipeline 'ci' has no step 'train'."
    );
    const job = jobAnswer();
    render(view(state({ open, job }), a));
    const ok = node.querySelector('button.jp-aidevops-runs-confirm-ok') as HTMLButtonElement;
    expect(ok.disabled).toBe(true); // one job at a time
    expect(ok.title).toBe('Job j1 (run ci) is still running; wait until it ends.');
  });

  it('keeps the DOM of a ticked run and an open confirmation when a new answer re-renders', () => {
    const a = actions();
    const open: IOpenStep = { runId: 'r1', step: 'train', confirming: true, error: null };
    const { node, render } = mount(view(state({ open, selected: ['r1'] }), a));
    const confirm = node.querySelector('.jp-aidevops-runs-confirm');
    const box = node.querySelector('[data-run-id="r1"] input') as HTMLInputElement;
    const newer = [run('r4', 'succeeded', { prepare: 'cached' }), ...runs];
    render(view(state({ runs: newer, open, selected: ['r1'] }), a));
    expect(node.querySelector('.jp-aidevops-runs-confirm')).toBe(confirm); // the same element: reconciled, not rebuilt
    expect(node.querySelector('[data-run-id="r1"] input')).toBe(box);
    expect(box.checked).toBe(true);
  });

  it('lists schedules with next and last run relative to the answer, or says how to add one, or hides them', () => {
    const a = actions();
    const { node, render } = mount(view(state({ schedules: [] }), a));
    expect(node.querySelector('.jp-aidevops-runs-schedules h3')?.textContent).toBe('Schedules');
    expect(node.querySelector('.jp-aidevops-runs-schedules-empty')?.textContent).toBe(
      `No schedules yet. Add one in a terminal: ${SCHEDULE_HINT}`
    );
    const nightly = schedule('nightly', {
      params: { seed: 2 },
      last_run: '2026-12-05T03:00:00+00:00',
      last_status: 'failed',
      last_run_id: 'r2',
      notify: 'http://127.0.0.1:9/hook'
    });
    render(
      view(
        state({ schedules: [nightly, schedule('weekly', { pipeline: 'default', next_run: '2026-12-09T01:00:00Z' })] }),
        a
      )
    );
    const rows = Array.from(node.querySelectorAll('[data-schedule]'));
    expect(rows.map(r => [r.getAttribute('data-schedule'), r.getAttribute('data-last-status')])).toEqual([
      ['nightly', 'failed'],
      ['weekly', 'none']
    ]);
    expect(rows[0].querySelector('.jp-aidevops-runs-schedule-next')?.textContent).toBe('next run in 2 h');
    expect(rows[0].querySelector('.jp-aidevops-runs-schedule-next')?.getAttribute('title')).toBe(
      'next run 2026-12-06 03:00:00 UTC'
    );
    expect(rows[0].querySelector('.jp-aidevops-runs-schedule-last')?.textContent).toBe('last run 22 h ago');
    expect(rows[0].querySelector('.jp-aidevops-runs-schedule-status')?.textContent).toBe('failed');
    expect(rows[0].querySelector('.jp-aidevops-runs-schedule-cron')?.textContent).toBe('0 3 * * *');
    expect(rows[0].querySelector('[data-param="seed"]')?.textContent).toBe('seed=2');
    expect(rows[1].querySelector('.jp-aidevops-runs-schedule-last')?.textContent).toBe('not run yet');
    expect(rows[1].querySelector('.jp-aidevops-runs-schedule-next')?.textContent).toBe('next run in 3 d');
    expect(rows[1].querySelector('.jp-aidevops-runs-pipeline')?.textContent).toBe('default');
    expect(node.querySelector('.jp-aidevops-runs-schedules-empty')).toBeNull();
    render(view(state({ schedules: null }), a));
    expect(node.querySelector('.jp-aidevops-runs-schedules')).toBeNull();
    render(view(state({ schedules: [], schedulesError: 'schedules.yaml is not valid YAML.' }), a));
    expect(node.querySelector('.jp-aidevops-runs-schedules [role="alert"]')?.textContent).toBe(
      'schedules.yaml is not valid YAML.'
    );
  });

  it('highlights overrides (step-scoped ones too) among the params', () => {
    const { node } = mount(view(state(), actions()));
    const params = Array.from(node.querySelectorAll('[data-run-id="r2"] .jp-aidevops-runs-param'));
    expect(params.map(p => [p.textContent, p.classList.contains('jp-mod-override')])).toEqual([
      ['model="nope"', true],
      ['train.l2=0.1', true],
      ['seed=0', false]
    ]);
  });

  it('offers "Re-run from failed step" on failed runs only, and not while a job runs', () => {
    const a = actions();
    const { node, render } = mount(view(state(), a));
    const buttons = Array.from(node.querySelectorAll('button.jp-aidevops-rerun')) as HTMLButtonElement[];
    expect(
      buttons.map(b => [b.closest('[data-run-id]')?.getAttribute('data-run-id'), b.textContent, b.disabled])
    ).toEqual([['r2', 'Re-run from failed step', false]]);
    click(buttons[0]);
    expect(a.log).toEqual(['rerun r2']);
    const job = {
      ...jobAnswer({ run_id: 'r3' }),
      log_tail: [
        '[IPKernelApp] WARNING | Kernel is running over TCP without encryption. All communication…',
        '▶ train running'
      ]
    };
    render(view(state({ job }), a));
    expect((node.querySelector('button.jp-aidevops-rerun') as HTMLButtonElement).disabled).toBe(true);
    expect((node.querySelector('button.jp-aidevops-runs-start') as HTMLButtonElement).disabled).toBe(true);
    const box = node.querySelector('[data-job-id="j1"]') as HTMLElement;
    expect(box.getAttribute('data-job-status')).toBe('running');
    expect(box.querySelector('.jp-aidevops-runs-log')?.textContent).toBe('▶ train running');
    expect(box.querySelector('button')).toBeNull(); // no dismiss while it runs
  });

  it('enables Diff with exactly two picked runs', () => {
    const a = actions();
    const { node, render } = mount(view(state({ selected: ['r1'] }), a));
    expect((node.querySelector('button.jp-aidevops-runs-diff') as HTMLButtonElement).disabled).toBe(true);
    expect((node.querySelector('[data-run-id="r1"] input') as HTMLInputElement).checked).toBe(true);
    render(view(state({ selected: ['r1', 'r2'] }), a));
    const diff = node.querySelector('button.jp-aidevops-runs-diff') as HTMLButtonElement;
    expect(diff.disabled).toBe(false);
    click(diff);
    click(node.querySelector('[data-run-id="r3"] input'));
    expect(a.log).toEqual(['diff', 'toggle r3']);
  });

  it('says when there are no runs, and shows errors and progress', () => {
    const { node } = mount(
      view(state({ runs: [], error: 'The server said no.', busy: 'Starting pipeline ci…' }), actions())
    );
    expect(node.querySelector('.jp-aidevops-empty')?.textContent).toMatch(/^No pipeline runs yet/);
    expect(node.querySelector('[role="alert"]')?.textContent).toBe('The server said no.');
    expect(node.querySelector('[role="status"]')?.textContent).toBe('Starting pipeline ci…');
  });

  it('renders the diff header with a step selector and the params that differ', () => {
    const steps: string[] = [];
    const diff = {
      base: 'r1',
      remote: 'r2',
      step: 'train',
      steps: ['prepare', 'train'],
      base_path: 'a',
      remote_path: 'b',
      url: 'nbdime/difftool?base=a&remote=b',
      params: { seed: [0, 1] as [unknown, unknown] }
    };
    const header = renderDiffHeader(diff, s => steps.push(s));
    const select = header.querySelector('select') as HTMLSelectElement;
    expect(select.value).toBe('train');
    select.value = 'prepare';
    select.dispatchEvent(new Event('change'));
    expect(steps).toEqual(['prepare']);
    expect(header.querySelector('[data-param="seed"]')?.textContent).toBe('seed: 0 → 1');
    const single = renderDiffHeader({ ...diff, steps: ['train'], params: {} }, () => undefined, 'No such step.');
    expect(single.querySelector('select')).toBeNull();
    expect(single.textContent).toContain('Both runs used the same params.');
    expect(single.querySelector('[role="alert"]')?.textContent).toBe('No such step.');
  });

  it('formats durations', () => {
    expect([formatDuration(0.04), formatDuration(12.66), formatDuration(95), formatDuration(null)]).toEqual([
      '0.04 s',
      '12.7 s',
      '1 min 35 s',
      ''
    ]);
  });
});
