/**
 * @jest-environment jsdom
 *
 * The Monitor panel's whole view across polls, as the panel's UseSignal re-renders it: what the user
 * did between two polls stays, and each chart host is built once and only gets new data.
 */

import * as React from 'react';

import { IMonitorActions } from '../monitor/components';
import { IMonitorState, MonitorView } from '../monitor/view';
import { deployment, series, summary } from './monitorfixtures';
import { mount } from './reactdom';

// uPlot reads matchMedia when it loads, which jsdom lacks; jsdom gives the hosts no width, so no plot is built.
jest.mock('uplot', () => ({ __esModule: true, default: class {} }));

const actions: IMonitorActions = { select: () => undefined, refresh: () => undefined, retrain: () => undefined };

function state(at: number, rate: number): IMonitorState {
  const dep = deployment('mon');
  const s = series();
  s.requests!.rate[s.requests!.rate.length - 1] = rate;
  const sum = summary(at);
  sum.drift!.features[1] = {
    ...sum.drift!.features[1],
    kind: 'category',
    top_categories: [{ category: 'red', reference: 0.5, live: 0.2 }]
  };
  return {
    deployments: [dep],
    selected: 'mon',
    deployment: dep,
    summary: sum,
    series: s,
    alerts: sum.alerts ?? [],
    events: sum.events ?? [],
    error: null,
    busy: null,
    loaded: true,
    job: null,
    jobError: null,
    retraining: false
  };
}

describe('MonitorView across polls', () => {
  it('keeps opened details and the chart hosts while the numbers change', () => {
    const view = mount(React.createElement(MonitorView, { state: state(1000, 10), actions }));
    const hosts = Array.from(view.node.querySelectorAll('.jp-aidevops-chart-host'));
    expect(hosts.map(h => (h as HTMLElement).dataset.chart)).toEqual([
      'rate',
      'latency',
      'errors',
      'accuracy',
      'drift',
      'predictions'
    ]);
    const details = view.node.querySelector('details.jp-aidevops-categories') as HTMLDetailsElement;
    details.open = true;
    view.render(React.createElement(MonitorView, { state: state(1003, 42), actions }));
    const rate = view.node.querySelector('[data-testid="monitor-rate"]') as HTMLElement;
    expect(rate.dataset.value).toBe('42');
    expect(view.node.querySelector('details.jp-aidevops-categories')).toBe(details);
    expect(details.open).toBe(true);
    expect(Array.from(view.node.querySelectorAll('.jp-aidevops-chart-host'))).toEqual(hosts);
    // LiveChart counts what it was given even before it has a width to draw in.
    const rateHost = hosts[0] as HTMLElement;
    expect(Number(rateHost.dataset.points)).toBeGreaterThan(0);
  });

  it('notes an empty accuracy chart and a missing drift profile in words', () => {
    const empty = { ...state(1000, 1), summary: null, series: null, alerts: [], events: [] };
    const view = mount(React.createElement(MonitorView, { state: empty, actions }));
    const note = (key: string) =>
      view.node.querySelector(`[data-testid="monitor-chart-${key}"] .jp-aidevops-chart-note`)!.textContent;
    expect(note('accuracy')).toMatch(/No live accuracy yet/);
    expect(note('drift')).toMatch(/No drift statistics yet/);
    expect(view.node.querySelector('[data-testid="monitor-no-alerts"]')).not.toBeNull();
  });
});
