/**
 * @jest-environment jsdom
 */

import { formatDuration, IRunsActions, renderDiffHeader, renderRunsPanel } from '../runs/components';
import { run } from './runs-fixtures';

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
    dismissJob: () => log.push('dismiss')
  };
}

const runs = [
  run('r3', 'running', { prepare: 'cached', train: 'running', evaluate: 'pending' }),
  run('r2', 'failed', { prepare: 'cached', train: 'failed', evaluate: 'pending' }, { overrides: { model: 'nope', 'train.l2': 0.1 }, params: { model: 'nope', seed: 0 } }),
  run('r1', 'succeeded', { prepare: 'ran', train: 'ran', evaluate: 'ran' })
];

describe('Runs panel components', () => {
  it('lists runs newest first with status, step chips and the data attributes tests rely on', () => {
    const a = actions();
    const root = renderRunsPanel({ runs, selected: [], job: null, error: null, busy: null, loaded: true }, a);
    const rows = Array.from(root.querySelectorAll('[data-run-id]'));
    expect(rows.map(r => [r.getAttribute('data-run-id'), r.getAttribute('data-status')])).toEqual([
      ['r3', 'running'], ['r2', 'failed'], ['r1', 'succeeded']
    ]);
    const chips = Array.from(rows[1].querySelectorAll('[data-step]'));
    expect(chips.map(c => `${c.getAttribute('data-step')}=${c.getAttribute('data-step-status')}`)).toEqual(['prepare=cached', 'train=failed', 'evaluate=pending']);
    expect(chips[1].classList.contains('jp-mod-failed')).toBe(true);
    expect(chips[0].textContent).toBe('prepare · cached · 0.50 s');
    expect(rows[1].querySelector('.jp-aidevops-runs-step-error')?.textContent).toBe('train failed: ConfigError: no model kind');
    (chips[1] as HTMLElement).click();
    expect(a.log).toEqual(['open r2 train train.ipynb']);
  });

  it('highlights overrides (step-scoped ones too) among the params', () => {
    const root = renderRunsPanel({ runs, selected: [], job: null, error: null, busy: null, loaded: true }, actions());
    const params = Array.from(root.querySelectorAll('[data-run-id="r2"] .jp-aidevops-runs-param'));
    expect(params.map(p => [p.textContent, p.classList.contains('jp-mod-override')])).toEqual([
      ['model="nope"', true], ['train.l2=0.1', true], ['seed=0', false]
    ]);
  });

  it('offers "Re-run from failed step" on failed runs only, and not while a job runs', () => {
    const a = actions();
    const idle = renderRunsPanel({ runs, selected: [], job: null, error: null, busy: null, loaded: true }, a);
    const buttons = Array.from(idle.querySelectorAll('button.jp-aidevops-rerun')) as HTMLButtonElement[];
    expect(buttons.map(b => [b.closest('[data-run-id]')?.getAttribute('data-run-id'), b.textContent, b.disabled])).toEqual([
      ['r2', 'Re-run from failed step', false]
    ]);
    buttons[0].click();
    expect(a.log).toEqual(['rerun r2']);
    const job = { id: 'j1', kind: 'run', argv: ['run', 'ci'], started: 1, finished: null, pid: 1, status: 'running', exit_code: null, pipeline: 'ci', deployment: null, run_id: 'r3', message: '', log_tail: ['[IPKernelApp] WARNING | Kernel is running over TCP without encryption. All communication…', '▶ train running'] };
    const busy = renderRunsPanel({ runs, selected: [], job, error: null, busy: null, loaded: true }, a);
    expect((busy.querySelector('button.jp-aidevops-rerun') as HTMLButtonElement).disabled).toBe(true);
    expect((busy.querySelector('button.jp-aidevops-runs-start') as HTMLButtonElement).disabled).toBe(true);
    const box = busy.querySelector('[data-job-id="j1"]') as HTMLElement;
    expect(box.getAttribute('data-job-status')).toBe('running');
    expect(box.querySelector('.jp-aidevops-runs-log')?.textContent).toBe('▶ train running');
    expect(box.querySelector('button')).toBeNull(); // no dismiss while it runs
  });

  it('enables Diff with exactly two picked runs', () => {
    const a = actions();
    const one = renderRunsPanel({ runs, selected: ['r1'], job: null, error: null, busy: null, loaded: true }, a);
    expect((one.querySelector('button.jp-aidevops-runs-diff') as HTMLButtonElement).disabled).toBe(true);
    expect((one.querySelector('[data-run-id="r1"] input') as HTMLInputElement).checked).toBe(true);
    const two = renderRunsPanel({ runs, selected: ['r1', 'r2'], job: null, error: null, busy: null, loaded: true }, a);
    const diff = two.querySelector('button.jp-aidevops-runs-diff') as HTMLButtonElement;
    expect(diff.disabled).toBe(false);
    diff.click();
    (two.querySelector('[data-run-id="r3"] input') as HTMLInputElement).dispatchEvent(new Event('change'));
    expect(a.log).toEqual(['diff', 'toggle r3']);
  });

  it('says when there are no runs, and shows errors and progress', () => {
    const empty = renderRunsPanel({ runs: [], selected: [], job: null, error: 'The server said no.', busy: 'Starting pipeline ci…', loaded: true }, actions());
    expect(empty.querySelector('.jp-aidevops-empty')?.textContent).toMatch(/^No pipeline runs yet/);
    expect(empty.querySelector('[role="alert"]')?.textContent).toBe('The server said no.');
    expect(empty.querySelector('[role="status"]')?.textContent).toBe('Starting pipeline ci…');
  });

  it('renders the diff header with a step selector and the params that differ', () => {
    const steps: string[] = [];
    const diff = { base: 'r1', remote: 'r2', step: 'train', steps: ['prepare', 'train'], base_path: 'a', remote_path: 'b', url: 'nbdime/difftool?base=a&remote=b', params: { seed: [0, 1] as [unknown, unknown] } };
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
    expect([formatDuration(0.04), formatDuration(12.66), formatDuration(95), formatDuration(null)]).toEqual(['0.04 s', '12.7 s', '1 min 35 s', '']);
  });
});
