import { seriesWindow, timeRange, timeTicks } from '../monitor/chartdata';
import { series } from './monitorfixtures';

describe('time axis of the Monitor charts', () => {
  it('gives a single accuracy point a short window, not the one-day range whose ticks read "00:00 00:00"', () => {
    const at = Date.UTC(2026, 11, 6, 0, 30) / 1000;
    const [lo, hi] = timeRange([at], null)!;
    expect(hi - lo).toBe(600);
    expect(lo).toBeLessThanOrEqual(at);
    expect(hi).toBeGreaterThanOrEqual(at);
  });

  it("spans the series' window over its points, so the time charts line up", () => {
    expect(seriesWindow(series())).toEqual([0, 30]);
    expect(timeRange([5, 20], [0, 3600])).toEqual([0, 3600]);
    expect(timeRange([4000], [0, 3600])).toEqual([0, 4000]);
    expect(timeRange([], null)).toBeNull();
    expect(seriesWindow(null)).toBeNull();
  });

  it('labels ticks by their spacing: seconds, minutes, then dates instead of repeated midnights', () => {
    const midnight = new Date(2026, 11, 6, 0, 0, 0).getTime() / 1000; // local time, as the labels are
    expect(timeTicks([midnight + 3723], 30)).toEqual(['01:02:03']);
    expect(timeTicks([midnight + 3723, midnight + 3783], 60)).toEqual(['01:02', '01:03']);
    const days = timeTicks([midnight, midnight + 86400], 86400);
    expect(days).not.toContain('00:00');
    expect(new Set(days).size).toBe(2);
    expect(timeTicks([midnight + 43200], 86400)[0]).toMatch(/12:00$/);
  });
});
