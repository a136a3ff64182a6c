/**
 * The Monitor panel's chart data: pure functions from API answers to uPlot's aligned arrays
 * ([x, series1, series2, ...], nulls for gaps), kept apart from uPlot so jest can check them.
 */

import { MonitorSeries, MonitorSummary } from '../common/api';

export type Column = (number | null)[];
export type Aligned = [number[], ...Column[]];

/** Request rate and failed requests per second over time. */
export function rateData(series: MonitorSeries | null): Aligned {
  const r = series?.requests;
  if (!r || !r.t?.length) {
    return [[], [], []];
  }
  return [r.t.slice(), r.rate.map(num), r.errors_per_s.map(num)];
}

/** Latency percentiles (ms) over time; empty buckets are gaps. */
export function latencyData(series: MonitorSeries | null): Aligned {
  const r = series?.requests;
  if (!r || !r.t?.length) {
    return [[], [], [], []];
  }
  return [r.t.slice(), r.p50_ms.map(num), r.p95_ms.map(num), r.p99_ms.map(num)];
}

/** Error rate (percent of requests that failed) over time. */
export function errorRateData(series: MonitorSeries | null): Aligned {
  const r = series?.requests;
  if (!r || !r.t?.length) {
    return [[], []];
  }
  return [r.t.slice(), r.error_rate.map(v => (num(v) === null ? null : (v as number) * 100))];
}

/** Live accuracy with its confidence band: [at, accuracy, lower, upper], points without an accuracy dropped. */
export function accuracyData(series: MonitorSeries | null): Aligned {
  const points = (series?.quality ?? [])
    .filter(p => num(p.accuracy) !== null && num(p.at) !== null)
    .sort((a, b) => a.at - b.at);
  return [
    points.map(p => p.at),
    points.map(p => num(p.accuracy)),
    points.map(p => num(p.accuracy_lower)),
    points.map(p => num(p.accuracy_upper))
  ];
}

export interface IDriftBars {
  names: string[];
  /** [index, psi of features not drifted, psi of drifted features, moderate band, major band, rule threshold] */
  data: Aligned;
  bands: [number, number] | null;
  threshold: number | null;
}

/** The PSI threshold of the deployment's feature-drift rule (metric psi), if it has one. */
export function psiRuleThreshold(summary: MonitorSummary | null): number | null {
  const rule = (summary?.settings?.rules ?? []).find(r => r.metric === 'psi' && typeof r.threshold === 'number');
  return rule ? rule.threshold : null;
}

/** PSI per feature as bars (drifted features in their own series, so they get their own colour) with threshold lines. */
export function driftData(summary: MonitorSummary | null): IDriftBars {
  const features = summary?.drift?.features ?? [];
  const bands = summary?.settings?.psi_bands ?? null;
  const threshold = psiRuleThreshold(summary);
  const x = features.map((_, i) => i);
  const flat = (v: number | null | undefined) => features.map(() => (v === null || v === undefined ? null : v));
  return {
    names: features.map(f => f.name),
    data: [
      x,
      features.map(f => (f.drifted ? null : num(f.psi))),
      features.map(f => (f.drifted ? num(f.psi) : null)),
      flat(bands?.[0]),
      flat(bands?.[1]),
      flat(threshold)
    ],
    bands: bands ? [bands[0], bands[1]] : null,
    threshold
  };
}

export interface IPredictionBars {
  names: string[];
  /** [class index, reference share, live share] */
  data: Aligned;
  task: string | null;
}

/** The live prediction distribution next to the reference's: shares per class (or per bin for a regressor). */
export function predictionData(series: MonitorSeries | null): IPredictionBars {
  const p = series?.predictions;
  if (!p || !p.task || !p.reference || !p.live) {
    return { names: [], data: [[], [], []], task: p?.task ?? null };
  }
  let names: string[];
  if (p.task === 'classification') {
    names = (p.classes ?? p.reference.map((_, i) => String(i))).map(String);
  } else {
    const e = p.edges ?? [];
    names = p.reference.map((_, i) => (e.length > i + 1 ? `${fmt(e[i])}–${fmt(e[i + 1])}` : String(i)));
  }
  const n = Math.min(names.length, p.reference.length, p.live.length);
  return {
    names: names.slice(0, n),
    data: [names.slice(0, n).map((_, i) => i), p.reference.slice(0, n).map(num), p.live.slice(0, n).map(num)],
    task: p.task
  };
}

/** How many drawable values a chart's series hold (x excluded, constant threshold lines excluded by `upTo`). */
export function pointCount(data: Aligned, upTo = data.length): number {
  let count = 0;
  for (let s = 1; s < Math.min(upTo, data.length); s++) {
    count += (data[s] as Column).filter(v => v !== null && Number.isFinite(v)).length;
  }
  return count;
}

function num(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

function fmt(v: number): string {
  return Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(1) : v.toPrecision(2);
}

/** The least span a time axis shows (s): one point or a few seconds of points still get readable ticks. */
export const MIN_TIME_SPAN_S = 600;

/** The window a series answer covers ([start, end] in epoch seconds), or null when it has none. */
export function seriesWindow(series: MonitorSeries | null): [number, number] | null {
  const start = num(series?.start);
  const end = num(series?.end);
  return start !== null && end !== null && end > start ? [start, end] : null;
}

/**
 * The x range of a time chart: the series' window (so the four time charts line up) stretched over the
 * points, and never shorter than `minSpan`. Without this uPlot gives a single point a one-day range,
 * whose midnight ticks read "00:00 00:00".
 */
export function timeRange(
  xs: ArrayLike<number>,
  window: [number, number] | null,
  minSpan = MIN_TIME_SPAN_S
): [number, number] | null {
  let lo = window ? window[0] : Infinity;
  let hi = window ? window[1] : -Infinity;
  for (let i = 0; i < xs.length; i++) {
    const x = xs[i];
    if (Number.isFinite(x)) {
      lo = Math.min(lo, x);
      hi = Math.max(hi, x);
    }
  }
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) {
    return null;
  }
  if (hi - lo < minSpan) {
    const middle = (lo + hi) / 2;
    return [middle - minSpan / 2, middle + minSpan / 2];
  }
  return [lo, hi];
}

const pad2 = (n: number) => String(n).padStart(2, '0');

/**
 * Time-axis tick labels in local time: HH:MM:SS when ticks are under a minute apart, HH:MM under a day,
 * and the date (plus the time where it is not midnight) for ticks a day or more apart.
 */
export function timeTicks(splits: number[], incr: number): string[] {
  return splits.map(s => {
    const d = new Date(s * 1000);
    const hm = `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
    if (incr < 60) {
      return `${hm}:${pad2(d.getSeconds())}`;
    }
    if (incr < 86400) {
      return hm;
    }
    const day = d.toLocaleDateString([], { month: 'short', day: 'numeric' });
    return hm === '00:00' ? day : `${day} ${hm}`;
  });
}
