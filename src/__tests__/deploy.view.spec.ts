/**
 * @jest-environment jsdom
 */

import * as React from 'react';

import { Deployment, ModelVersion, RegisteredModel } from '../common/api';
import { IActions, IViewState, keyMetrics } from '../deploy/components';
import { DeployView } from '../deploy/view';
import { deploymentAnswer, historyEntry } from './apifixtures';
import { mount } from './reactdom';

/** The Deploy panel's React view rendered into the document, as its ReactWidget does. */
function renderPanel(state: IViewState, actions: IActions): HTMLElement {
  return mount(React.createElement(DeployView, { state, actions })).node;
}

const version = (v: string, aliases: string[], gate: boolean | null): ModelVersion => ({
  version: v,
  aliases,
  run_id: 'r',
  created: null,
  status: 'READY',
  gate_passed: gate,
  gate_reasons: null,
  metrics: { accuracy: 0.93, log_loss: 0.2, zeta: 1, beta: 2 },
  lineage: {
    pipeline: 'ci',
    pipeline_run_id: `run-${v}`,
    git_commit: 'abc',
    git_dirty: 'False',
    data_hash: 'h',
    source: 'pipeline',
    run_in_workspace: true,
    notebooks: [
      { step: 'train', name: '02_train.ipynb', available: true },
      { step: 'prepare', name: '01.ipynb', available: false }
    ]
  }
});
const model: RegisteredModel = {
  name: 'ci-digits',
  description: '',
  aliases: { champion: '1' },
  versions: [version('2', ['challenger'], false), version('1', ['champion'], true)]
};
const deployment = deploymentAnswer({ history: [historyEntry()] });

function actions(): IActions & { log: string[] } {
  const log: string[] = [];
  return {
    log,
    deploy: (m, v) => log.push(`deploy ${m.name} v${v.version}`),
    canary: (d, v) => log.push(`canary ${d.name} v${v.version}`),
    promote: d => log.push(`promote ${d.name}`),
    clearCanary: d => log.push(`clear ${d.name}`),
    rollback: d => log.push(`rollback ${d.name}`),
    undeploy: d => log.push(`undeploy ${d.name}`),
    approve: d => log.push(`approve ${d.name} v${d.awaiting_approval?.version}`),
    reject: d => log.push(`reject ${d.name} v${d.awaiting_approval?.version}`),
    openNotebook: (run, step, name) => log.push(`open ${run} ${step} ${name}`),
    refresh: () => log.push('refresh')
  };
}

describe('components', () => {
  it('orders key metrics: preferred names first, at most three', () => {
    expect(keyMetrics({ zeta: 1, log_loss: 0.2, accuracy: 0.9, beta: 2, bad: NaN })).toEqual([
      ['accuracy', 0.9],
      ['log_loss', 0.2],
      ['beta', 2]
    ]);
  });

  it('shows versions with aliases, gate badges and notebook links; Deploy when nothing serves the model', () => {
    const a = actions();
    const el = renderPanel({ models: [model], deployments: [], error: null, busy: null, loaded: true }, a);
    const rows = el.querySelectorAll('tr.jp-aidevops-version');
    expect(Array.from(rows).map(r => r.getAttribute('data-version'))).toEqual(['2', '1']);
    expect(rows[1].querySelector('.jp-aidevops-gate')!.textContent).toBe('gate passed');
    expect(rows[0].querySelector('.jp-aidevops-gate')!.textContent).toBe('gate failed');
    expect(rows[1].textContent).toContain('champion');
    (rows[1].querySelector('a.jp-aidevops-notebook-link') as HTMLElement).click();
    expect(rows[1].querySelector('.jp-aidevops-notebook-missing')!.textContent).toBe('prepare');
    (rows[1].querySelector('button.jp-aidevops-deploy') as HTMLButtonElement).click();
    expect(a.log).toEqual(['open run-1 train 02_train.ipynb', 'deploy ci-digits v1']);
    expect(el.textContent).toContain('No deployments yet');
  });

  it('offers Switch and Canary for other versions of a live deployment, and shows its health, endpoint and history', () => {
    const a = actions();
    const el = renderPanel({ models: [model], deployments: [deployment], error: null, busy: null, loaded: true }, a);
    const v2 = el.querySelector('tr[data-version="2"]')!;
    expect(v2.querySelector('.jp-aidevops-switch')).not.toBeNull();
    (v2.querySelector('.jp-aidevops-canary') as HTMLButtonElement).click();
    expect(el.querySelector('tr[data-version="1"]')!.textContent).toContain('serving in ci-digits');
    const card = el.querySelector('[data-deployment="ci-digits"]')!;
    expect(card.querySelector('.jp-aidevops-health')!.textContent).toBe('healthy');
    expect(card.querySelector('.jp-aidevops-endpoint')!.textContent).toBe('http://127.0.0.1:5000/invocations');
    expect(card.querySelector('.jp-aidevops-rollback')).toBeNull(); // no previous version yet
    expect(card.querySelectorAll('.jp-aidevops-history-row')).toHaveLength(1);
    expect(a.log).toEqual(['canary ci-digits v2']);
  });

  it("shows the gate's own comparison beside the badge, as text rather than only a tooltip", () => {
    const failed = version('2', ['challenger'], false);
    failed.gate_summary = 'accuracy 0.9543 vs v1 0.9600 on 350 rows';
    failed.gate_comparison = {
      summary: failed.gate_summary,
      compared_on: 'the same 350 test rows for candidate and champion',
      candidate: { accuracy: 0.9543 },
      champion: { accuracy: 0.96 },
      champion_version: '1',
      rows: { compared_rows: 350 }
    };
    const el = renderPanel(
      {
        models: [{ ...model, versions: [failed, version('1', ['champion'], true)] }],
        deployments: [],
        error: null,
        busy: null,
        loaded: true
      },
      actions()
    );
    const cell = el.querySelector('tr[data-version="2"] .jp-aidevops-gate-cell')!;
    expect(cell.querySelector('.jp-aidevops-gate')!.textContent).toBe('gate failed');
    const line = cell.querySelector('[data-testid="gate-summary"]') as HTMLElement;
    expect(line.textContent).toBe('accuracy 0.9543 vs v1 0.9600 on 350 rows');
    expect(line.title).toBe('compared on the same 350 test rows for candidate and champion');
    // A version the gate never compared shows its badge alone.
    expect(el.querySelector('tr[data-version="1"] [data-testid="gate-summary"]')).toBeNull();
  });

  it('names every versions and history cell by its column, so the narrow sidebar layout can label them', () => {
    const el = renderPanel(
      { models: [model], deployments: [deployment], error: null, busy: null, loaded: true },
      actions()
    );
    const labels = (sel: string) =>
      Array.from(el.querySelector(sel)!.querySelectorAll('td')).map(td => td.getAttribute('data-label'));
    expect(labels('tr.jp-aidevops-version')).toEqual(['Version', 'Aliases', 'Gate', 'Metrics', 'Produced by', null]);
    expect(labels('tr.jp-aidevops-history-row')).toEqual(['When', 'Change', 'Versions', 'By', 'Why']);
  });

  it('disables actions while one runs and shows progress and errors', () => {
    const el = renderPanel(
      {
        models: [model],
        deployments: [],
        error: 'Port 5000 is taken; pick another.',
        busy: 'Deploying ci-digits@champion…',
        loaded: true
      },
      actions()
    );
    expect(el.querySelector('[role="status"]')!.textContent).toBe('Deploying ci-digits@champion…');
    expect(el.querySelector('[role="alert"]')!.textContent).toBe('Port 5000 is taken; pick another.');
    expect((el.querySelector('button.jp-aidevops-deploy') as HTMLButtonElement).disabled).toBe(true);
  });

  it('shows a retrained version awaiting approval with its evidence, and Approve and Reject', () => {
    const a = actions();
    const held: Deployment = {
      ...deployment,
      awaiting_approval: {
        version: '2',
        from_version: '1',
        retraining: 3,
        pipeline_run_id: 'run-2',
        gate: {
          passed: true,
          summary: 'accuracy 0.9638 vs v1 0.9499 on 359 rows',
          reasons: ['accuracy 0.96 >= 0.93'],
          compared_on: 'the same 359 rows',
          comparison: null
        },
        trigger: 'feature-drift fired: 12 features drifted',
        rule: 'feature-drift',
        live_rows: 120,
        live_since: '2026-11-23T09:50:00+00:00',
        since: '2026-11-23T10:00:00+00:00'
      }
    };
    const el = renderPanel({ models: [model], deployments: [held], error: null, busy: null, loaded: true }, a);
    const box = el.querySelector('[data-deployment="ci-digits"] [data-testid="approval"]') as HTMLElement;
    expect(box.dataset.version).toBe('2');
    expect(box.querySelector('h5')!.textContent).toBe('Awaiting approval: v2');
    expect(box.querySelector('.jp-aidevops-gate')!.textContent).toBe('gate passed');
    expect(box.querySelector('.jp-aidevops-gate-summary')!.textContent).toBe(
      'accuracy 0.9638 vs v1 0.9499 on 359 rows'
    );
    expect(box.querySelector('.jp-aidevops-approval-trigger')!.textContent).toBe(
      'feature-drift fired: 12 features drifted (rule feature-drift)'
    );
    expect(box.querySelector('.jp-aidevops-approval-rows')!.textContent).toBe(
      '120 labelled live rows, logged since 2026-11-23 09:50:00'
    );
    (box.querySelector('button.jp-aidevops-reject') as HTMLButtonElement).click();
    (box.querySelector('button.jp-aidevops-approve') as HTMLButtonElement).click();
    expect(a.log).toEqual(['reject ci-digits v2', 'approve ci-digits v2']);
    const busy = renderPanel({ models: [model], deployments: [held], error: null, busy: 'x', loaded: true }, a);
    expect((busy.querySelector('button.jp-aidevops-approve') as HTMLButtonElement).disabled).toBe(true);
    const none = renderPanel({ models: [model], deployments: [deployment], error: null, busy: null, loaded: true }, a);
    expect(none.querySelector('[data-testid="approval"]')).toBeNull();
  });
});
