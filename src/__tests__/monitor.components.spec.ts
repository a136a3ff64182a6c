/**
 * @jest-environment jsdom
 */

import {
  accuracyData,
  driftData,
  errorRateData,
  latencyData,
  pointCount,
  predictionData,
  rateData
} from '../monitor/chartdata';
import * as React from 'react';

import { Deployment, JobDetail, MonitorAlert, MonitorEvent, MonitorSeries, MonitorSummary } from '../common/api';
import { ago, Alerts, Events, Header, IMonitorActions, Job, Numbers, Shadow, Status } from '../monitor/components';
import { deployment, retrainJob, series, summary } from './monitorfixtures';
import { dom, mount } from './reactdom';

const renderNumbers = (s: MonitorSummary | null, series: MonitorSeries | null) =>
  dom(React.createElement(Numbers, { summary: s, series }));
const renderAlerts = (alerts: MonitorAlert[], now: number) => dom(React.createElement(Alerts, { alerts, now }));
const renderEvents = (events: MonitorEvent[], now: number) => dom(React.createElement(Events, { events, now }));
const header = (deployments: Deployment[], selected: string | null, busy: boolean, actions: IMonitorActions) =>
  React.createElement(Header, { deployments, selected, busy, actions });
const renderHeader = (deployments: Deployment[], selected: string | null, busy: boolean, actions: IMonitorActions) =>
  dom(header(deployments, selected, busy, actions));
const renderStatus = (
  error: string | null,
  loaded: boolean,
  deployments: Deployment[],
  dep: Deployment | undefined,
  s: MonitorSummary | null
) => dom(React.createElement(Status, { error, loaded, deployments, deployment: dep, summary: s }));
const renderJob = (job: JobDetail | null, error: string | null, starting: boolean) =>
  dom(React.createElement(Job, { job, error, starting }));

const actions = () => ({ select: jest.fn(), refresh: jest.fn(), retrain: jest.fn() });
const value = (root: HTMLElement, id: string) => root.querySelector(`[data-testid="${id}"]`) as HTMLElement;

describe('ago', () => {
  it('says how long ago in words', () => {
    expect(ago(100, 102)).toBe('just now');
    expect(ago(100, 142)).toBe('42 s ago');
    expect(ago(0, 185)).toBe('3 min ago');
    expect(ago(0, 7500)).toBe('2 h 5 min ago');
    expect(ago(0, 7200)).toBe('2 h ago');
    expect(ago(0, 3 * 86400)).toBe('3 d ago');
    expect(ago(null, 5)).toBe('—');
    expect(ago(200, 100)).toBe('just now');
  });
});

describe('renderNumbers', () => {
  it('shows the key numbers with their raw values', () => {
    const root = renderNumbers(summary(), series());
    expect(value(root, 'monitor-rate').dataset.value).toBe('61.5');
    expect(value(root, 'monitor-rate').textContent).toBe('61.5');
    expect(value(root, 'monitor-p50').textContent).toBe('1.3 ms');
    expect(value(root, 'monitor-p95').dataset.value).toBe('3.5');
    expect(value(root, 'monitor-p99').textContent).toBe('7.8 ms');
    expect(value(root, 'monitor-error-rate').textContent).toBe('1.00 %');
    expect(value(root, 'monitor-error-rate').dataset.value).toBe('0.01');
    const acc = value(root, 'monitor-accuracy');
    expect(acc.textContent).toBe('0.913 [0.860, 0.950]');
    expect([acc.dataset.value, acc.dataset.lower, acc.dataset.upper]).toEqual(['0.9133', '0.86', '0.95']);
    expect(value(root, 'monitor-logged-rows').dataset.value).toBe('1234');
    expect(value(root, 'monitor-drifted').textContent).toBe('2 of 4');
    expect(value(root, 'monitor-drifted').dataset.features).toBe('pixel_3,pixel_5');
    expect(value(root, 'monitor-windows').dataset.value).toBe('4');
  });

  it('shows dashes and empty values before any pass', () => {
    const root = renderNumbers(null, null);
    expect(value(root, 'monitor-p95').textContent).toBe('—');
    expect(value(root, 'monitor-p95').dataset.value).toBe('');
    expect(value(root, 'monitor-accuracy').textContent).toBe('—');
  });

  it('says why there is no accuracy', () => {
    const s = summary();
    s.quality = { status: 'insufficient labels', n: 3 };
    expect(value(renderNumbers(s, null), 'monitor-accuracy').textContent).toBe('insufficient labels');
  });
});

describe('renderAlerts and renderEvents', () => {
  it('lists firing alerts first with since-when in words, value and features', () => {
    const s = summary(1000);
    const table = renderAlerts(s.alerts!, 1000);
    const rows = table.querySelectorAll('tbody tr');
    expect(rows).toHaveLength(2);
    const firing = rows[0] as HTMLElement;
    expect(firing.dataset.rule).toBe('feature-drift');
    expect(firing.dataset.state).toBe('firing');
    expect(firing.querySelector('.jp-aidevops-alert-since')!.textContent).toBe('2 min ago');
    expect(firing.querySelector('.jp-aidevops-alert-value')!.textContent).toBe('0.900');
    expect(firing.querySelector('.jp-aidevops-alert-features')!.textContent).toBe('pixel_3, pixel_5');
    expect(firing.querySelector('.jp-aidevops-alert-condition')!.textContent).toBe('psi > 0.25');
  });

  it('shortens long feature lists', () => {
    const names = Array.from({ length: 10 }, (_, i) => `f${i}`);
    const table = renderAlerts([{ rule: 'r', state: 'firing', since: 0, value: 1, features: names }], 10);
    expect(table.querySelector('.jp-aidevops-alert-features')!.textContent).toBe('f0, f1, f2, f3, f4, f5 +4 more');
  });

  it('says so when there are no alerts or events', () => {
    expect(renderAlerts([], 0).textContent).toMatch(/No alert rules/);
    expect(renderEvents([], 0).textContent).toMatch(/No alert has fired/);
  });

  it('lists events in the order given, with who handled them', () => {
    const s = summary(1000);
    const list = renderEvents(s.events!.slice().reverse(), 1000);
    const items = list.querySelectorAll('li');
    expect(Array.from(items).map(i => (i as HTMLElement).dataset.eventId)).toEqual(['2', '1']);
    expect(items[0].textContent).toContain('feature-drift fired');
    expect(items[0].textContent).toContain('retraining #1');
  });
});

describe('renderHeader, renderStatus and renderJob', () => {
  it('offers the deployments and Retrain now, which is disabled while a retraining runs', () => {
    const a = actions();
    const deps = [deployment('mon'), deployment('old', 'stopped')] as any;
    const header = renderHeader(deps, 'mon', false, a);
    const select = header.querySelector('select') as HTMLSelectElement;
    expect(Array.from(select.options).map(o => o.value)).toEqual(['mon', 'old']);
    expect(select.value).toBe('mon');
    React.act(() => {
      select.value = 'old';
      select.dispatchEvent(new Event('change', { bubbles: true }));
    });
    expect(a.select).toHaveBeenCalledWith('old');
    const button = header.querySelector('[data-testid="monitor-retrain"]') as HTMLButtonElement;
    expect(button.disabled).toBe(false);
    React.act(() => button.click());
    expect(a.retrain).toHaveBeenCalled();
    expect(
      (renderHeader(deps, 'mon', true, a).querySelector('[data-testid="monitor-retrain"]') as HTMLButtonElement)
        .disabled
    ).toBe(true);
  });

  it('explains an empty or stopped state', () => {
    expect(renderStatus(null, true, [], undefined, null).textContent).toMatch(/No deployments yet/);
    const stopped = deployment('old', 'stopped') as any;
    expect(renderStatus(null, true, [stopped], stopped, null).textContent).toMatch(/old is stopped/);
    expect(renderStatus('boom.', true, [stopped], stopped, null).querySelector('[role="alert"]')!.textContent).toBe(
      'boom.'
    );
  });

  it('shows a running job with its log tail, then the run it produced', () => {
    const job = { ...retrainJob(), log_tail: ['prepare: ran', 'train: running'], run: null };
    let box = renderJob(job, null, true);
    const section = box.querySelector('[data-testid="monitor-job"]') as HTMLElement;
    expect(section.dataset.status).toBe('running');
    expect(box.querySelector('[data-testid="monitor-job-log"]')!.textContent).toBe('prepare: ran\ntrain: running');
    expect(box.querySelector('[data-testid="monitor-job-run"]')).toBeNull();
    box = renderJob(
      { ...job, status: 'succeeded', exit_code: 0, run_id: 'r-42', message: 'retraining #1 of mon: switched' },
      null,
      false
    );
    expect((box.querySelector('[data-testid="monitor-job"]') as HTMLElement).dataset.runId).toBe('r-42');
    expect(box.querySelector('[data-testid="monitor-job-run"]')!.textContent).toBe('r-42');
    expect(box.querySelector('[data-testid="monitor-job-status"]')!.textContent).toBe('succeeded');
    expect(renderJob(null, 'refused.', false).querySelector('[role="alert"]')!.textContent).toBe('refused.');
  });
});

describe('chart data', () => {
  it('aligns the request series, with gaps for empty buckets', () => {
    expect(rateData(series())).toEqual([
      [0, 10, 20],
      [50, 0, 61.5],
      [0, 0, 3]
    ]);
    expect(latencyData(series())).toEqual([
      [0, 10, 20],
      [1, null, 2],
      [2, null, 3],
      [4, null, 9]
    ]);
    expect(errorRateData(series())).toEqual([
      [0, 10, 20],
      [0, null, 5]
    ]);
    expect(rateData(null)).toEqual([[], [], []]);
    expect(pointCount(latencyData(series()))).toBe(6);
  });

  it('orders accuracy points by time and drops those without an accuracy', () => {
    expect(accuracyData(series())).toEqual([
      [5, 20],
      [0.95, 0.9],
      [0.9, 0.85],
      [0.98, 0.94]
    ]);
  });

  it('splits drifted features into their own bar series and draws the bands and the rule threshold', () => {
    const d = driftData(summary());
    expect(d.names).toEqual(['pixel_1', 'pixel_3', 'pixel_5', 'pixel_7']);
    expect(d.data[0]).toEqual([0, 1, 2, 3]);
    expect(d.data[1]).toEqual([0, null, null, 0.06]);
    expect(d.data[2]).toEqual([null, 0.7, 0.8, null]);
    expect(d.data[3]).toEqual([0.1, 0.1, 0.1, 0.1]);
    expect(d.data[4]).toEqual([0.25, 0.25, 0.25, 0.25]);
    expect(d.data[5]).toEqual([0.25, 0.25, 0.25, 0.25]);
    expect(d.threshold).toBe(0.25);
    expect(pointCount(d.data, 3)).toBe(4);
    expect(driftData(null).names).toEqual([]);
  });

  it('puts reference and live prediction shares side by side per class', () => {
    const p = predictionData(series());
    expect(p.names).toEqual(['0', '1', '2']);
    expect(p.data).toEqual([
      [0, 1, 2],
      [0.3, 0.3, 0.4],
      [0.1, 0.2, 0.7]
    ]);
    const regression = predictionData({
      ...series(),
      predictions: { task: 'regression', edges: [0, 1, 2], reference: [0.5, 0.5], live: [0.2, 0.8], n: 5 }
    });
    expect(regression.names).toEqual(['0.0–1.0', '1.0–2.0']);
    expect(predictionData({ ...series(), predictions: { task: null } }).names).toEqual([]);
  });
});

describe('the header across polls', () => {
  it('shows the deployment the model selected after a re-render', () => {
    const deps = [deployment('a'), deployment('b')] as any;
    const view = mount(header(deps, 'a', false, actions()));
    view.render(header(deps, 'b', false, actions()));
    expect((view.node.querySelector('[data-testid="monitor-deployment"]') as HTMLSelectElement).value).toBe('b');
  });
});

describe('the shadow section', () => {
  it("shows the agreement rate and both versions' accuracies with their intervals, and nothing without a shadow", () => {
    const shadow = {
      version: '3',
      active_version: '2',
      running: true,
      requests: 480,
      rows: 960,
      errors: 0,
      agreement_rate: 0.9125,
      active_accuracy: { value: 0.95, low: 0.91, high: 0.97, labels: 200 },
      shadow_accuracy: null,
      dropped: 2
    };
    const root = dom(React.createElement(Shadow, { shadow }));
    expect(root.dataset.version).toBe('3');
    expect(root.querySelector('h3')!.textContent).toBe('Shadow: v3');
    expect(value(root, 'monitor-shadow-agreement').textContent).toBe('91.3 %');
    expect(value(root, 'monitor-shadow-agreement').dataset.value).toBe('0.9125');
    expect(value(root, 'monitor-shadow-active-accuracy').textContent).toBe('0.950 [0.910, 0.970] on 200 labels');
    expect(value(root, 'monitor-shadow-accuracy').textContent).toBe('— (no labels yet)');
    const none = mount(React.createElement(Shadow, { shadow: null }));
    expect(none.node.childElementCount).toBe(0);
  });
});

describe('a version awaiting approval', () => {
  it('is pointed out, with where to decide', () => {
    const dep = deployment('mon') as any;
    dep.awaiting_approval = { version: '3', retraining: 4, gate: { passed: true, reasons: [] } };
    const root = renderStatus(null, true, [dep], dep, null);
    expect(value(root, 'monitor-awaiting').textContent).toBe(
      'v3 (retraining #4) awaits approval: approve or reject it in the Deploy panel.'
    );
    expect(renderStatus(null, true, [deployment('mon') as any], deployment('mon') as any, null).textContent).toBe('');
  });
});
