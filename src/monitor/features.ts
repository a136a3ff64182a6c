/**
 * The Monitor panel's per-feature drift table: one row per feature of the latest monitor pass with its
 * PSI (and band), the test behind it (KS for numbers, chi-square for categories) and why it drifted.
 * A category feature also shows its unseen-category rate and, in a details row, its top categories'
 * reference vs live shares as paired bars (the server's `top_categories`; the last is "(other)").
 */

import { CategoryShare, FeatureDrift, MonitorSummary } from '../common/api';
import { h } from '../common/dom';

function share(v: number | null | undefined): string {
  return typeof v === 'number' && Number.isFinite(v) ? `${(v * 100).toFixed(1)} %` : '—';
}

function pvalue(v: number | null | undefined): string {
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    return '—';
  }
  return v < 0.001 ? 'p < 0.001' : `p = ${v.toFixed(3)}`;
}

function raw(v: number | null | undefined): string {
  return typeof v === 'number' && Number.isFinite(v) ? String(v) : '';
}

/** The test shown for a feature: chi-square for categories, KS (with chi-square on the bins) for numbers. */
export function testText(f: FeatureDrift): string {
  if (f.kind === 'category') {
    return `χ² ${pvalue(f.chi2_pvalue)}`;
  }
  const parts = [];
  if (f.ks_pvalue !== undefined && f.ks_pvalue !== null) {
    parts.push(`KS ${pvalue(f.ks_pvalue)}`);
  }
  if (f.chi2_pvalue !== undefined && f.chi2_pvalue !== null) {
    parts.push(`χ² ${pvalue(f.chi2_pvalue)}`);
  }
  return parts.length ? parts.join(', ') : '—';
}

/** One category's reference and live shares as two bars on a common 0–`scale` axis. */
function categoryRow(c: CategoryShare, scale: number): HTMLElement {
  const bar = (cls: string, v: number) => {
    const b = h('span', { class: `jp-aidevops-share-bar ${cls}` });
    b.style.width = `${Math.max(0, Math.min(100, (v / scale) * 100)).toFixed(1)}%`;
    return h('div', { class: 'jp-aidevops-share-track' }, b);
  };
  return h(
    'tr',
    { class: 'jp-aidevops-category', 'data-category': c.category, 'data-reference': raw(c.reference), 'data-live': raw(c.live) },
    h('td', { class: 'jp-aidevops-category-name', title: c.category }, c.category),
    h('td', { class: 'jp-aidevops-category-bars' }, bar('jp-mod-reference', c.reference), bar('jp-mod-live', c.live)),
    h('td', { class: 'jp-aidevops-category-shares' }, `${share(c.reference)} → ${share(c.live)}`)
  );
}

/** A category feature's top categories, reference vs live, in a <details> kept open across polls. */
export function renderCategories(f: FeatureDrift): HTMLElement | null {
  const cats = f.top_categories ?? [];
  if (!cats.length) {
    return null;
  }
  const scale = Math.max(0.01, ...cats.map(c => Math.max(c.reference || 0, c.live || 0)));
  return h(
    'details',
    { class: 'jp-aidevops-categories', 'data-keep': `categories:${f.name}` },
    h('summary', {}, `top categories (${cats.length}): reference vs live`),
    h(
      'table',
      { class: 'jp-aidevops-table jp-aidevops-categories-table', 'data-testid': `monitor-categories-${f.name}` },
      h('tbody', {}, ...cats.map(c => categoryRow(c, scale)))
    )
  );
}

/** What moved for a feature beyond PSI: unseen categories, or the numeric effect sizes. */
function detail(f: FeatureDrift): HTMLElement {
  const cell = h('td', { class: 'jp-aidevops-feature-detail' });
  if (f.kind === 'category') {
    cell.append(
      h(
        'div',
        {
          class: 'jp-aidevops-unseen',
          'data-testid': `monitor-unseen-${f.name}`,
          'data-value': raw(f.unseen_rate),
          'data-reference': raw(f.unseen_rate_ref),
          title: 'share of present live values outside the reference categories (reference: what it leads one to expect)'
        },
        `unseen ${share(f.unseen_rate)} (ref ${share(f.unseen_rate_ref)})`
      )
    );
    const cats = renderCategories(f);
    if (cats) {
      cell.append(cats);
    }
  } else {
    const bits = [];
    if (typeof f.wasserstein_std === 'number') {
      bits.push(`Wasserstein ${f.wasserstein_std.toFixed(2)} σ`);
    }
    if (typeof f.mean_shift_std === 'number') {
      bits.push(`mean shift ${f.mean_shift_std.toFixed(2)} σ`);
    }
    cell.append(bits.join(', ') || '');
  }
  return cell;
}

function featureRow(f: FeatureDrift): HTMLElement {
  const kind = f.kind ?? 'numeric';
  const state = f.status !== 'ok' ? f.status : f.drifted ? `drifted (${(f.reasons ?? []).join(', ') || 'psi'})` : 'ok';
  const cls = f.status !== 'ok' ? 'jp-mod-unknown' : f.drifted ? 'jp-mod-failed' : 'jp-mod-passed';
  return h(
    'tr',
    { class: `jp-aidevops-feature${f.drifted ? ' jp-mod-drifted' : ''}`, 'data-feature': f.name, 'data-kind': kind, 'data-drifted': String(f.drifted) },
    h('td', { class: 'jp-aidevops-feature-name' }, f.name, ' ', h('span', { class: `jp-aidevops-badge jp-aidevops-kind jp-mod-${kind}` }, kind)),
    h('td', {}, h('span', { class: `jp-aidevops-badge ${cls}` }, state)),
    h('td', { class: 'jp-aidevops-feature-psi', 'data-value': raw(f.psi) }, f.psi === null || f.psi === undefined ? '—' : `${f.psi.toFixed(3)}${f.psi_band ? ' ' + f.psi_band : ''}`),
    h('td', { class: 'jp-aidevops-feature-test', 'data-chi2': raw(f.chi2_pvalue), 'data-ks': raw(f.ks_pvalue) }, testText(f)),
    detail(f)
  );
}

/** The per-feature drift table, drifted features first. */
export function renderFeatures(summary: MonitorSummary | null): HTMLElement {
  const features = summary?.drift?.features ?? [];
  if (!features.length) {
    return h('p', { class: 'jp-aidevops-empty' }, summary?.drift?.status ?? 'No drift statistics yet.');
  }
  const ordered = features.slice().sort((a, b) => Number(b.drifted) - Number(a.drifted));
  return h(
    'div',
    { class: 'jp-aidevops-scroll-x', 'data-keep': 'features-scroll' },
    h(
      'table',
      { class: 'jp-aidevops-table jp-aidevops-features', 'data-testid': 'monitor-features' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Feature'), h('th', {}, 'Status'), h('th', {}, 'PSI'), h('th', {}, 'Test'), h('th', {}, 'Detail'))),
      h('tbody', {}, ...ordered.map(featureRow))
    )
  );
}
