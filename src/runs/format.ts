/**
 * How the Runs panel words its values: durations, param values, timestamps, times relative to now, a
 * step's explanation. Pure functions: the time they compare with is passed in, never read from the clock.
 */

import { RunStep } from '../common/api';

/** 0.04 → "0.04 s", 12.7 → "12.7 s", 95 → "1 min 35 s". */
export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) {
    return '';
  }
  if (seconds < 1) {
    return `${seconds.toFixed(2)} s`;
  }
  if (seconds < 60) {
    return `${seconds.toFixed(1)} s`;
  }
  const minutes = Math.floor(seconds / 60);
  return `${minutes} min ${Math.round(seconds - 60 * minutes)} s`;
}

/** A param value as the user would type it in the params box (JSON, strings too). */
export function formatValue(value: unknown): string {
  return value === undefined ? '—' : JSON.stringify(value);
}

/** "2026-12-05T06:01:00+00:00" → "2026-12-05 06:01:00". */
export function formatWhen(iso: string | null | undefined): string {
  return iso ? iso.replace('T', ' ').slice(0, 19) : '';
}

/**
 * `iso` relative to `now` (ms since the epoch): "in 5 h", "3 min ago", "now"; '' when `iso` is not a time.
 * Rounded to the unit that reads best: seconds under a minute, minutes under 1.5 h, hours under 36 h, then days.
 */
export function relativeTime(iso: string | null | undefined, now: number): string {
  const at = iso ? Date.parse(iso) : NaN;
  if (!isFinite(at)) {
    return '';
  }
  const seconds = Math.round((at - now) / 1000);
  const size = Math.abs(seconds);
  if (size < 5) {
    return 'now';
  }
  let amount: string;
  if (size < 60) {
    amount = `${size} s`;
  } else if (size < 90 * 60) {
    amount = `${Math.round(size / 60)} min`;
  } else if (size < 36 * 3600) {
    amount = `${Math.round(size / 3600)} h`;
  } else {
    amount = `${Math.round(size / 86400)} d`;
  }
  return seconds > 0 ? `in ${amount}` : `${amount} ago`;
}

/** The step's explanation, one sentence a line (none recorded: an empty list). */
export function whyLines(step: RunStep): string[] {
  return Array.isArray(step.why) ? step.why.filter(line => typeof line === 'string' && line.trim() !== '') : [];
}

/** The chip's tooltip: status and cache, why it ran (or which run it reused), the error, what a click does. */
export function chipTitle(name: string, step: RunStep, notebook: 'open' | 'missing' | 'none'): string {
  const status = step.status ?? 'pending';
  return [
    `${name}: ${status}${step.cache ? ` (cache ${step.cache})` : ''}`,
    ...whyLines(step).map(line => `why: ${line}`),
    step.error ? `error: ${step.error}` : '',
    notebook === 'open'
      ? 'click to open its executed notebook'
      : notebook === 'missing'
        ? 'its notebook is not in this workspace'
        : ''
  ]
    .filter(Boolean)
    .join('\n');
}

/** The badge look of a run, job or schedule status. */
export function badgeClass(status: string | null | undefined): string {
  switch (status) {
    case 'succeeded':
    case 'ran':
      return 'jp-mod-passed';
    case 'failed':
    case 'interrupted':
      return 'jp-mod-failed';
    case 'running':
      return 'jp-mod-running';
    default:
      return 'jp-mod-unknown';
  }
}
