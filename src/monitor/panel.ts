/**
 * The Monitor panel widget (a main-area tab): a fixed skeleton whose text parts are re-rendered on each
 * model change while the charts stay and only get new data; "Retrain now" asks for confirmation first.
 */

import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { h } from '../common/dom';
import { replaceKeepingState } from '../common/keepstate';
import { PolledPanel } from '../common/panel';
import { accuracyData, driftData, errorRateData, latencyData, predictionData, rateData, seriesWindow } from './chartdata';
import { accuracyChart, driftChart, errorRateChart, latencyChart, LiveChart, predictionChart, rateChart } from './charts';
import { IMonitorActions, renderAlerts, renderEvents, renderHeader, renderJob, renderNumbers, renderStatus } from './components';
import { renderFeatures } from './features';
import { MonitorModel } from './model';

interface IChartSlot {
  chart: LiveChart;
  note: HTMLElement;
}

export class MonitorPanel extends PolledPanel<MonitorModel> {
  constructor(model: MonitorModel) {
    super(model);
    this.addClass('jp-aidevops-panel');
    this.addClass('jp-aidevops-monitor');
    const body = h('div', { class: 'jp-aidevops-body' });
    // Stable containers (their content is replaced on each change), named for tests and screenshots.
    this.header = h('div', { 'data-testid': 'monitor-header-area' });
    this.status = h('div', { 'data-testid': 'monitor-status-area' });
    this.job = h('div', { 'data-testid': 'monitor-job-area' });
    this.numbers = h('div', { 'data-testid': 'monitor-numbers-area' });
    this.alerts = h('div', { 'data-testid': 'monitor-alerts-area' });
    this.events = h('div', { 'data-testid': 'monitor-events-area' });
    this.features = h('div', { 'data-testid': 'monitor-features-area' });
    const grid = h('div', { class: 'jp-aidevops-charts' });
    const slot = (key: string, title: string, make: (host: HTMLElement) => LiveChart): IChartSlot => {
      const host = h('div', { class: 'jp-aidevops-chart-host', 'data-chart': key, 'data-points': '0' });
      const note = h('div', { class: 'jp-aidevops-chart-note jp-aidevops-muted' });
      grid.append(h('section', { class: 'jp-aidevops-chart', 'data-testid': `monitor-chart-${key}` }, h('h4', {}, title), note, host));
      return { chart: make(host), note };
    };
    const shown = () => seriesWindow(this.model.series);
    this.charts = {
      rate: slot('rate', 'Request rate', host => rateChart(host, shown)),
      latency: slot('latency', 'Latency p50 / p95 / p99', host => latencyChart(host, shown)),
      errors: slot('errors', 'Error rate', host => errorRateChart(host, shown)),
      accuracy: slot('accuracy', 'Live accuracy (95 % interval)', host => accuracyChart(host, shown)),
      drift: slot('drift', 'Feature drift (PSI per feature)', host => driftChart(host, () => this.driftNames)),
      predictions: slot('predictions', 'Predictions: live vs reference', host => predictionChart(host, () => this.predictionNames))
    };
    body.append(
      this.header,
      this.status,
      this.job,
      this.numbers,
      h('h3', {}, 'Alerts'),
      this.alerts,
      h('h3', {}, 'Charts'),
      grid,
      h('h3', {}, 'Feature drift'),
      this.features,
      h('h3', {}, 'Recent events'),
      this.events
    );
    this.node.append(body);
    this.model.changed.connect(this.render, this);
    this.render();
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this.model.changed.disconnect(this.render, this);
    for (const slot of Object.values(this.charts)) {
      slot.chart.dispose();
    }
    super.dispose();
  }

  /** Closing the tab ends the panel (and its polling); the command opens a fresh one. */
  protected onCloseRequest(msg: Message): void {
    super.onCloseRequest(msg);
    this.dispose();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this.fitCharts();
  }

  protected onResize(msg: Widget.ResizeMessage): void {
    super.onResize(msg);
    this.fitCharts();
  }

  private fitCharts(): void {
    for (const slot of Object.values(this.charts)) {
      slot.chart.fit();
    }
  }

  private render(): void {
    const m = this.model;
    const now = Date.now() / 1000;
    const s = m.summary;
    const top = this.node.scrollTop;
    this.node.dataset.deployment = m.selected ?? '';
    this.node.dataset.at = s?.at !== undefined ? String(s.at) : '';
    this.node.dataset.version = s?.version ?? '';
    // Each section keeps what the user did in it (open category details, the open deployment list, scroll).
    replaceKeepingState(this.header, renderHeader(m.deployments, m.selected, m.retraining, this.actions));
    replaceKeepingState(this.status, renderStatus(m.error, m.loaded, m.deployments, m.deployment, s));
    replaceKeepingState(this.job, renderJob(m.job, m.jobError, m.retraining));
    const log = this.job.querySelector('.jp-aidevops-job-log');
    if (log) {
      log.scrollTop = log.scrollHeight; // the newest lines of the job's output in view
    }
    replaceKeepingState(this.numbers, renderNumbers(s, m.series));
    replaceKeepingState(this.alerts, renderAlerts(m.alerts, now));
    replaceKeepingState(this.events, renderEvents(m.events, now));
    replaceKeepingState(this.features, renderFeatures(s));

    const series = m.series;
    this.charts.rate.chart.update(rateData(series));
    this.charts.latency.chart.update(latencyData(series));
    this.charts.errors.chart.update(errorRateData(series));
    const acc = accuracyData(series);
    this.charts.accuracy.chart.update(acc);
    this.charts.accuracy.note.textContent = acc[0].length ? '' : 'No live accuracy yet: it needs labels (POST /feedback) for logged requests.';
    const drift = driftData(s);
    this.driftNames = drift.names;
    this.charts.drift.chart.update(drift.data);
    this.charts.drift.note.textContent = drift.names.length
      ? `bands ${drift.bands ? drift.bands.join(' / ') : '—'}, rule threshold ${drift.threshold ?? '—'}; ${s?.drift?.status ?? ''}`
      : s?.drift?.status ?? 'No drift statistics yet (the model needs a reference profile and logged rows).';
    const predictions = predictionData(series);
    this.predictionNames = predictions.names;
    this.charts.predictions.chart.update(predictions.data);
    this.charts.predictions.note.textContent = predictions.names.length
      ? `${series?.predictions?.n ?? 0} live predictions${series?.predictions?.unseen ? `, ${series.predictions.unseen} of unseen classes` : ''}`
      : 'No predictions logged yet.';
    this.node.scrollTop = top;
  }

  private async confirmRetrain(): Promise<void> {
    const dep = this.model.deployment;
    if (!dep) {
      return;
    }
    const answer = await showDialog({
      title: `Retrain ${dep.model} now?`,
      body:
        `The pipeline that registers ${dep.model} runs again (until register) on its original data plus ${dep.name}'s labelled live rows. ` +
        `If the new version passes the gate and becomes champion, ${dep.name} switches to it.`,
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Retrain' })]
    });
    if (answer.button.accept) {
      await this.model.retrain();
    }
  }

  private readonly actions: IMonitorActions = {
    select: name => this.model.select(name),
    refresh: () => void this.model.poll.refresh(),
    retrain: () => void this.confirmRetrain()
  };

  private readonly header: HTMLElement;
  private readonly status: HTMLElement;
  private readonly job: HTMLElement;
  private readonly numbers: HTMLElement;
  private readonly alerts: HTMLElement;
  private readonly events: HTMLElement;
  private readonly features: HTMLElement;
  private readonly charts: Record<'rate' | 'latency' | 'errors' | 'accuracy' | 'drift' | 'predictions', IChartSlot>;
  private driftNames: string[] = [];
  private predictionNames: string[] = [];
}
