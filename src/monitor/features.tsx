/**
 * The Monitor panel's per-feature drift table: one row per feature of the latest monitor pass with its
 * PSI (and band), the test behind it (KS for numbers, chi-square for categories) and why it drifted.
 * A category feature also shows its unseen-category rate and, in a details row, its top categories'
 * reference vs live shares as paired bars (the server's `top_categories`; the last is "(other)"), in a
 * <details> whose open state React keeps across polls.
 */

import * as React from 'react';

import { CategoryShare, FeatureDrift, MonitorSummary } from '../common/api';
import { TableHead } from '../common/table';

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

function Bar(props: { cls: string; share: number; scale: number }): React.ReactElement {
  const width = Math.max(0, Math.min(100, (props.share / props.scale) * 100)).toFixed(1);
  return (
    <div className="jp-aidevops-share-track">
      <span className={`jp-aidevops-share-bar ${props.cls}`} style={{ width: `${width}%` }} />
    </div>
  );
}

/** One category's reference and live shares as two bars on a common 0–`scale` axis. */
function CategoryRow(props: { category: CategoryShare; scale: number }): React.ReactElement {
  const c = props.category;
  return (
    <tr
      className="jp-aidevops-category"
      data-category={c.category}
      data-reference={raw(c.reference)}
      data-live={raw(c.live)}
    >
      <td className="jp-aidevops-category-name" title={c.category}>
        {c.category}
      </td>
      <td className="jp-aidevops-category-bars">
        <Bar cls="jp-mod-reference" share={c.reference} scale={props.scale} />
        <Bar cls="jp-mod-live" share={c.live} scale={props.scale} />
      </td>
      <td className="jp-aidevops-category-shares">{`${share(c.reference)} → ${share(c.live)}`}</td>
    </tr>
  );
}

/** A category feature's top categories, reference vs live (closed at first; then as the user leaves it). */
export function Categories(props: { feature: FeatureDrift }): React.ReactElement | null {
  const f = props.feature;
  const cats = f.top_categories ?? [];
  if (!cats.length) {
    return null;
  }
  const scale = Math.max(0.01, ...cats.map(c => Math.max(c.reference || 0, c.live || 0)));
  return (
    <details className="jp-aidevops-categories">
      <summary>{`top categories (${cats.length}): reference vs live`}</summary>
      <table className="jp-aidevops-table jp-aidevops-categories-table" data-testid={`monitor-categories-${f.name}`}>
        <tbody>
          {cats.map(c => (
            <CategoryRow key={c.category} category={c} scale={scale} />
          ))}
        </tbody>
      </table>
    </details>
  );
}

/** What moved for a feature beyond PSI: unseen categories, or the numeric effect sizes. */
function Detail(props: { feature: FeatureDrift }): React.ReactElement {
  const f = props.feature;
  if (f.kind === 'category') {
    return (
      <td className="jp-aidevops-feature-detail">
        <div
          className="jp-aidevops-unseen"
          data-testid={`monitor-unseen-${f.name}`}
          data-value={raw(f.unseen_rate)}
          data-reference={raw(f.unseen_rate_ref)}
          title="share of present live values outside the reference categories (reference: what it leads one to expect)"
        >
          {`unseen ${share(f.unseen_rate)} (ref ${share(f.unseen_rate_ref)})`}
        </div>
        <Categories feature={f} />
      </td>
    );
  }
  const bits = [];
  if (typeof f.wasserstein_std === 'number') {
    bits.push(`Wasserstein ${f.wasserstein_std.toFixed(2)} σ`);
  }
  if (typeof f.mean_shift_std === 'number') {
    bits.push(`mean shift ${f.mean_shift_std.toFixed(2)} σ`);
  }
  return <td className="jp-aidevops-feature-detail">{bits.join(', ')}</td>;
}

function FeatureRow(props: { feature: FeatureDrift }): React.ReactElement {
  const f = props.feature;
  const kind = f.kind ?? 'numeric';
  const state = f.status !== 'ok' ? f.status : f.drifted ? `drifted (${(f.reasons ?? []).join(', ') || 'psi'})` : 'ok';
  const cls = f.status !== 'ok' ? 'jp-mod-unknown' : f.drifted ? 'jp-mod-failed' : 'jp-mod-passed';
  return (
    <tr
      className={`jp-aidevops-feature${f.drifted ? ' jp-mod-drifted' : ''}`}
      data-feature={f.name}
      data-kind={kind}
      data-drifted={String(f.drifted)}
    >
      <td className="jp-aidevops-feature-name">
        {f.name} <span className={`jp-aidevops-badge jp-aidevops-kind jp-mod-${kind}`}>{kind}</span>
      </td>
      <td>
        <span className={`jp-aidevops-badge ${cls}`}>{state}</span>
      </td>
      <td className="jp-aidevops-feature-psi" data-value={raw(f.psi)}>
        {f.psi === null || f.psi === undefined ? '—' : `${f.psi.toFixed(3)}${f.psi_band ? ' ' + f.psi_band : ''}`}
      </td>
      <td className="jp-aidevops-feature-test" data-chi2={raw(f.chi2_pvalue)} data-ks={raw(f.ks_pvalue)}>
        {testText(f)}
      </td>
      <Detail feature={f} />
    </tr>
  );
}

/** The per-feature drift table, drifted features first. */
export function Features(props: { summary: MonitorSummary | null }): React.ReactElement {
  const { summary } = props;
  const features = summary?.drift?.features ?? [];
  if (!features.length) {
    return <p className="jp-aidevops-empty">{summary?.drift?.status ?? 'No drift statistics yet.'}</p>;
  }
  const ordered = features.slice().sort((a, b) => Number(b.drifted) - Number(a.drifted));
  return (
    <div className="jp-aidevops-scroll-x">
      <table className="jp-aidevops-table jp-aidevops-features" data-testid="monitor-features">
        <TableHead columns={['Feature', 'Status', 'PSI', 'Test', 'Detail']} />
        <tbody>
          {ordered.map(f => (
            <FeatureRow key={f.name} feature={f} />
          ))}
        </tbody>
      </table>
    </div>
  );
}
