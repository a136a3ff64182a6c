/**
 * uPlot wrappers for the Monitor panel: each chart is built once on a host element and then fed new data
 * with setData (no re-creation per poll); it follows its host's width with a ResizeObserver.
 * The host carries `data-points` (drawable values of its data series) so a browser test can tell an
 * empty chart from one that drew something.
 */

import uPlot from 'uplot';

import { Aligned, pointCount, timeRange, timeTicks } from './chartdata';

export const CHART_HEIGHT = 170;

const COLORS = {
  blue: '#1f77b4',
  orange: '#ff7f0e',
  red: '#d62728',
  green: '#2ca02c',
  grey: '#8c8c8c',
  purple: '#9467bd',
  amber: '#e6a700'
};

function cssVar(name: string, fallback: string): string {
  const v = typeof getComputedStyle === 'function' ? getComputedStyle(document.body).getPropertyValue(name).trim() : '';
  return v || fallback;
}

function axis(extra: uPlot.Axis = {}): uPlot.Axis {
  const ink = cssVar('--jp-ui-font-color2', '#616161');
  const grid = cssVar('--jp-border-color2', '#e0e0e0');
  return {
    stroke: ink,
    grid: { stroke: grid, width: 1 },
    ticks: { stroke: grid, width: 1 },
    font: '11px sans-serif',
    ...extra
  };
}

/**
 * Time ticks (see timeTicks: HH:MM, HH:MM:SS under a minute apart, dates a day or more apart). uPlot draws
 * them on the canvas, so the host also carries them as text (`data-x-ticks`, " | " between) for tests.
 */
const clock = (u: uPlot, splits: number[], _axis: number, _space: number, incr: number) => {
  const labels = timeTicks(splits, incr);
  const host = u.root.parentElement;
  if (host) {
    host.dataset.xTicks = labels.join(' | ');
  }
  return labels;
};

/** The window a time chart shows ([start, end] epoch seconds), null when unknown. */
export type TimeWindow = () => [number, number] | null;

/** The x scale of a time chart: the series' window over the points, at least ten minutes (see timeRange). */
const timeScale = (window: TimeWindow): uPlot.Scale => ({
  time: true,
  range: (u, min, max) => timeRange((u.data[0] ?? []) as number[], window()) ?? [min, max]
});

/** One chart on `host`: `options(width)` gives uPlot's options; `seriesForCount` limits which series count as drawn. */
export class LiveChart {
  constructor(
    readonly host: HTMLElement,
    private readonly options: (width: number) => uPlot.Options,
    private readonly seriesForCount?: number
  ) {
    this.observer = typeof ResizeObserver === 'function' ? new ResizeObserver(() => this.fit()) : null;
    this.observer?.observe(host);
  }

  /** Draw `data` (creating the plot on first use, when the host has a width). */
  update(data: Aligned): void {
    this.data = data;
    this.host.dataset.points = String(pointCount(data, this.seriesForCount));
    if (!this.plot) {
      const width = this.width();
      if (width <= 0) {
        return; // hidden: drawn when the host gets a size (fit)
      }
      this.plot = new uPlot(this.options(width), data as uPlot.AlignedData, this.host);
      return;
    }
    this.plot.setData(data as uPlot.AlignedData);
  }

  /** Follow the host's width. */
  fit(): void {
    const width = this.width();
    if (width <= 0) {
      return;
    }
    if (!this.plot) {
      if (this.data) {
        this.update(this.data);
      }
      return;
    }
    if (Math.abs(this.plot.width - width) > 1) {
      this.plot.setSize({ width, height: CHART_HEIGHT });
    }
  }

  dispose(): void {
    this.observer?.disconnect();
    this.plot?.destroy();
    this.plot = null;
  }

  private width(): number {
    return Math.floor(this.host.clientWidth);
  }

  private plot: uPlot | null = null;
  private data: Aligned | null = null;
  private readonly observer: ResizeObserver | null;
}

function base(width: number, series: uPlot.Series[], extra: Partial<uPlot.Options> = {}): uPlot.Options {
  return {
    width,
    height: CHART_HEIGHT,
    series: [{}, ...series],
    legend: { show: true, live: true },
    cursor: { drag: { x: false, y: false } },
    ...extra
  };
}

const line = (label: string, stroke: string, value?: (u: uPlot, v: number | null) => string): uPlot.Series => ({
  label,
  stroke,
  width: 1.5,
  spanGaps: false,
  points: { show: false },
  value: value ? (u, v) => value(u, v) : undefined
});

const fixed =
  (digits: number, unit = '') =>
  (_u: uPlot, v: number | null) =>
    v === null || v === undefined ? '—' : `${v.toFixed(digits)}${unit}`;

export function rateChart(host: HTMLElement, window: TimeWindow = () => null): LiveChart {
  return new LiveChart(host, width =>
    base(width, [line('requests/s', COLORS.blue, fixed(1)), line('failed/s', COLORS.red, fixed(2))], {
      axes: [axis({ values: clock, space: 60 }), axis({ size: 45 })],
      scales: { x: timeScale(window), y: { range: (_u, _min, max) => [0, Math.max(1, max)] } }
    })
  );
}

export function latencyChart(host: HTMLElement, window: TimeWindow = () => null): LiveChart {
  return new LiveChart(host, width =>
    base(
      width,
      [
        line('p50 ms', COLORS.green, fixed(1)),
        line('p95 ms', COLORS.orange, fixed(1)),
        line('p99 ms', COLORS.red, fixed(1))
      ],
      {
        axes: [axis({ values: clock, space: 60 }), axis({ size: 45 })],
        scales: { x: timeScale(window), y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] } }
      }
    )
  );
}

export function errorRateChart(host: HTMLElement, window: TimeWindow = () => null): LiveChart {
  return new LiveChart(host, width =>
    base(width, [line('error rate %', COLORS.red, fixed(2, ' %'))], {
      axes: [axis({ values: clock, space: 60 }), axis({ size: 45 })],
      scales: { x: timeScale(window), y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] } }
    })
  );
}

/** Accuracy with its confidence band (between the upper and lower series). */
export function accuracyChart(host: HTMLElement, window: TimeWindow = () => null): LiveChart {
  return new LiveChart(host, width =>
    base(
      width,
      [
        { ...line('accuracy', COLORS.blue, fixed(3)), width: 2, points: { show: true, size: 4 } },
        line('lower', 'rgba(31,119,180,0.35)', fixed(3)),
        line('upper', 'rgba(31,119,180,0.35)', fixed(3))
      ],
      {
        axes: [axis({ values: clock, space: 60 }), axis({ size: 45 })],
        scales: {
          x: timeScale(window),
          y: { range: (_u, min, max) => [Math.max(0, Math.min(min, 0.5)), Math.min(1, Math.max(max, 0.5)) + 0.02] }
        },
        bands: [{ series: [3, 2], fill: 'rgba(31,119,180,0.15)' }]
      }
    )
  );
}

/** Categorical x axis labelled from `names()` (features, classes). */
function categories(names: () => string[]): uPlot.Axis {
  return axis({
    values: (_u, splits) => splits.map(i => (Number.isInteger(i) ? (names()[i] ?? '') : '')),
    space: 56, // label every k-th category so names do not overlap (k from incrs)
    rotate: 0,
    incrs: [1, 2, 4, 8, 16, 32, 64]
  } as uPlot.Axis);
}

function bars(label: string, fill: string, align: -1 | 0 | 1 = 0, size = 0.8): uPlot.Series {
  return {
    label,
    fill,
    stroke: fill,
    width: 0,
    points: { show: false },
    paths: uPlot.paths.bars!({ size: [size, 60], align }),
    value: fixed(3)
  };
}

const hline = (label: string, stroke: string, dash: number[]): uPlot.Series => ({
  label,
  stroke,
  width: 1.2,
  dash,
  points: { show: false },
  value: fixed(2)
});

/** PSI per feature (bars; drifted ones red) with the PSI bands and the drift rule's threshold as lines. */
export function driftChart(host: HTMLElement, names: () => string[]): LiveChart {
  return new LiveChart(
    host,
    width =>
      base(
        width,
        [
          bars('PSI', COLORS.blue),
          bars('PSI (drifted)', COLORS.red),
          hline('moderate', COLORS.amber, [4, 3]),
          hline('major', COLORS.orange, [6, 3]),
          hline('rule', COLORS.red, [2, 2])
        ],
        {
          axes: [categories(names), axis({ size: 45 })],
          scales: {
            x: { time: false, range: (_u, min, max) => [min - 0.6, max + 0.6] },
            y: { range: (_u, _min, max) => [0, Math.max(0.3, max * 1.1)] }
          }
        }
      ),
    3 // the threshold lines do not count as drawn data
  );
}

/** The live prediction distribution next to the reference's, per class. */
export function predictionChart(host: HTMLElement, names: () => string[]): LiveChart {
  return new LiveChart(host, width =>
    base(width, [bars('reference', COLORS.grey, -1, 0.4), bars('live', COLORS.blue, 1, 0.4)], {
      axes: [categories(names), axis({ size: 45 })],
      scales: {
        x: { time: false, range: (_u, min, max) => [min - 0.6, max + 0.6] },
        y: { range: (_u, _min, max) => [0, Math.max(0.05, max * 1.15)] }
      }
    })
  );
}
