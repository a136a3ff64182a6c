/**
 * The Monitor panel's view in React (the panel re-renders it on every model change, see ReactPanel):
 * the header, the key numbers, alerts, the six charts, the per-feature drift table and recent events.
 * React reconciles, so what the user opened (a feature's top categories), the picked deployment and the
 * scroll position stay across polls; each chart is built once and only gets new data (./charts).
 *
 * The DOM (classes, data-testid and data-* attributes) is the contract the browser tests read.
 */

import * as React from 'react';

import { Deployment, MonitorSeries, MonitorSummary } from '../common/api';
import { IPolledStatus } from '../common/polledmodel';
import {
  accuracyData,
  Aligned,
  driftData,
  errorRateData,
  latencyData,
  predictionData,
  rateData,
  seriesWindow
} from './chartdata';
import {
  accuracyChart,
  driftChart,
  errorRateChart,
  latencyChart,
  LiveChart,
  predictionChart,
  rateChart
} from './charts';
import { Alerts, Events, Header, IMonitorActions, Job, Numbers, Shadow, Status } from './components';
import { Features } from './features';
import type { IMonitorShown } from './model';

/** Everything the Monitor panel shows, in one object (see MonitorModel.view). */
export interface IMonitorState extends IMonitorShown, IPolledStatus {
  /** The picked deployment. */
  deployment: Deployment | undefined;
  /** True from the click on Retrain now until the job has ended (or could not start). */
  retraining: boolean;
}

/** What a chart's axes read when they draw: the time window, and the names of categorical x values. */
interface IAxisContext {
  window: [number, number] | null;
  driftNames: string[];
  predictionNames: string[];
}

type ChartKey = 'rate' | 'latency' | 'errors' | 'accuracy' | 'drift' | 'predictions';

/** The charts, in the order shown: what each is called, and how it is built on a host (its axes read `axes`). */
const CHARTS: {
  name: ChartKey;
  title: string;
  make: (host: HTMLElement, axes: React.MutableRefObject<IAxisContext>) => LiveChart;
}[] = [
  { name: 'rate', title: 'Request rate', make: (h, axes) => rateChart(h, () => axes.current.window) },
  { name: 'latency', title: 'Latency p50 / p95 / p99', make: (h, axes) => latencyChart(h, () => axes.current.window) },
  { name: 'errors', title: 'Error rate', make: (h, axes) => errorRateChart(h, () => axes.current.window) },
  {
    name: 'accuracy',
    title: 'Live accuracy (95 % interval)',
    make: (h, axes) => accuracyChart(h, () => axes.current.window)
  },
  {
    name: 'drift',
    title: 'Feature drift (PSI per feature)',
    make: (h, axes) => driftChart(h, () => axes.current.driftNames)
  },
  {
    name: 'predictions',
    title: 'Predictions: live vs reference',
    make: (h, axes) => predictionChart(h, () => axes.current.predictionNames)
  }
];

/** One chart: a host element whose uPlot (built on mount, disposed on unmount) gets `data` on each render. */
function Chart(props: {
  name: ChartKey;
  title: string;
  note: string;
  data: Aligned;
  make: (host: HTMLElement) => LiveChart;
}): React.ReactElement {
  const host = React.useRef<HTMLDivElement>(null);
  const chart = React.useRef<LiveChart | null>(null);
  React.useEffect(() => {
    chart.current = props.make(host.current as HTMLDivElement);
    return () => {
      chart.current?.dispose();
      chart.current = null;
    };
  }, []);
  React.useEffect(() => {
    chart.current?.update(props.data);
  });
  return (
    <section className="jp-aidevops-chart" data-testid={`monitor-chart-${props.name}`}>
      <h4>{props.title}</h4>
      <div className="jp-aidevops-chart-note jp-aidevops-muted">{props.note}</div>
      {/* data-points: LiveChart keeps it up to date (drawable values); React only sets the initial 0. */}
      <div className="jp-aidevops-chart-host" data-chart={props.name} data-points="0" ref={host} />
    </section>
  );
}

function Charts(props: { summary: MonitorSummary | null; series: MonitorSeries | null }): React.ReactElement {
  const { summary: s, series } = props;
  const acc = accuracyData(series);
  const drift = driftData(s);
  const predictions = predictionData(series);
  // The axes read this when they draw (after this render): the latest window and category names.
  const context = React.useRef<IAxisContext>({ window: null, driftNames: [], predictionNames: [] });
  context.current = { window: seriesWindow(series), driftNames: drift.names, predictionNames: predictions.names };
  const driftNote = drift.names.length
    ? `bands ${drift.bands ? drift.bands.join(' / ') : '—'}, rule threshold ${drift.threshold ?? '—'}; ${s?.drift?.status ?? ''}`
    : (s?.drift?.status ?? 'No drift statistics yet (the model needs a reference profile and logged rows).');
  const unseen = series?.predictions?.unseen;
  const predictionNote = predictions.names.length
    ? `${series?.predictions?.n ?? 0} live predictions${unseen ? `, ${unseen} of unseen classes` : ''}`
    : 'No predictions logged yet.';
  const data: Record<ChartKey, Aligned> = {
    rate: rateData(series),
    latency: latencyData(series),
    errors: errorRateData(series),
    accuracy: acc,
    drift: drift.data,
    predictions: predictions.data
  };
  const notes: Partial<Record<ChartKey, string>> = {
    accuracy: acc[0].length ? '' : 'No live accuracy yet: it needs labels (POST /feedback) for logged requests.',
    drift: driftNote,
    predictions: predictionNote
  };
  return (
    <div className="jp-aidevops-charts">
      {CHARTS.map(c => (
        <Chart
          key={c.name}
          name={c.name}
          title={c.title}
          note={notes[c.name] ?? ''}
          data={data[c.name]}
          make={host => c.make(host, context)}
        />
      ))}
    </div>
  );
}

/** The whole panel body. */
export function MonitorView(props: { state: IMonitorState; actions: IMonitorActions }): React.ReactElement {
  const { state: m, actions } = props;
  const now = Date.now() / 1000;
  const s = m.summary;
  return (
    <div className="jp-aidevops-body">
      <div data-testid="monitor-header-area">
        <Header deployments={m.deployments} selected={m.selected} busy={m.retraining} actions={actions} />
      </div>
      <div data-testid="monitor-status-area">
        <Status error={m.error} loaded={m.loaded} deployments={m.deployments} deployment={m.deployment} summary={s} />
      </div>
      <div data-testid="monitor-job-area">
        <Job job={m.job} error={m.jobError} starting={m.retraining} />
      </div>
      <div data-testid="monitor-numbers-area">
        <Numbers summary={s} series={m.series} />
      </div>
      <Shadow shadow={s?.shadow} />
      <h3>Alerts</h3>
      <div data-testid="monitor-alerts-area">
        <Alerts alerts={m.alerts} now={now} />
      </div>
      <h3>Charts</h3>
      <Charts summary={s} series={m.series} />
      <h3>Feature drift</h3>
      <div data-testid="monitor-features-area">
        <Features summary={s} />
      </div>
      <h3>Recent events</h3>
      <div data-testid="monitor-events-area">
        <Events events={m.events} now={now} />
      </div>
    </div>
  );
}
