/**
 * @jest-environment jsdom
 */

import * as React from 'react';

import { FeatureDrift, MonitorSummary } from '../common/api';
import { Features, testText } from '../monitor/features';
import { summary } from './monitorfixtures';
import { dom, mount } from './reactdom';

const renderFeatures = (s: MonitorSummary | null) => dom(React.createElement(Features, { summary: s }));

/** A category feature shaped like drift.py's FeatureDrift.to_dict() for kind "category". */
const colour: FeatureDrift = {
  name: 'colour',
  status: 'ok',
  n: 300,
  psi: 0.41,
  psi_band: 'major',
  chi2_pvalue: 0.0001,
  drifted: true,
  reasons: ['psi'],
  kind: 'category',
  unseen_rate: 0.12,
  unseen_rate_ref: 0.005,
  top_categories: [
    { category: 'red', reference: 0.5, live: 0.2 },
    { category: 'blue', reference: 0.3, live: 0.45 },
    { category: '(other)', reference: 0.0, live: 0.12 }
  ]
};

function withColour() {
  const s = summary();
  s.drift!.features = [
    ...s.drift!.features.map(f => ({ ...f, kind: 'numeric' as const, ks_pvalue: 0.2, chi2_pvalue: 0.3 })),
    colour
  ];
  return s;
}

describe('renderFeatures', () => {
  it("shows a category feature's top categories, reference vs live, and its unseen-category rate", () => {
    const root = renderFeatures(withColour());
    const row = root.querySelector('tr[data-feature="colour"]') as HTMLElement;
    expect(row.dataset.kind).toBe('category');
    expect(row.querySelector('.jp-aidevops-feature-psi')!.textContent).toBe('0.410 major');
    expect(row.querySelector('.jp-aidevops-feature-test')!.textContent).toBe('χ² p < 0.001');
    const unseen = row.querySelector('[data-testid="monitor-unseen-colour"]') as HTMLElement;
    expect(unseen.textContent).toBe('unseen 12.0 % (ref 0.5 %)');
    expect([unseen.dataset.value, unseen.dataset.reference]).toEqual(['0.12', '0.005']);
    const cats = Array.from(row.querySelectorAll('tr.jp-aidevops-category')) as HTMLElement[];
    expect(cats.map(c => [c.dataset.category, c.dataset.reference, c.dataset.live])).toEqual([
      ['red', '0.5', '0.2'],
      ['blue', '0.3', '0.45'],
      ['(other)', '0', '0.12']
    ]);
    expect(cats[0].querySelector('.jp-aidevops-category-shares')!.textContent).toBe('50.0 % → 20.0 %');
    // Bars on a common scale: the largest share (red's reference, 0.5) fills its track.
    const widths = Array.from(cats[0].querySelectorAll('.jp-aidevops-share-bar')).map(
      b => (b as HTMLElement).style.width
    );
    expect(widths).toEqual(['100.0%', '40.0%']);
  });

  it("keeps a feature's opened top categories open across polls", () => {
    const view = mount(React.createElement(Features, { summary: withColour() }));
    const details = () => view.node.querySelector('tr[data-feature="colour"] details') as HTMLDetailsElement;
    expect(details().open).toBe(false);
    details().open = true;
    const next = withColour();
    next.drift!.features[next.drift!.features.length - 1].psi = 0.5;
    view.render(React.createElement(Features, { summary: next }));
    expect(view.node.querySelector('tr[data-feature="colour"] .jp-aidevops-feature-psi')!.textContent).toBe(
      '0.500 major'
    );
    expect(details().open).toBe(true);
  });

  it('lists drifted features first, with why, and numeric features with KS and chi-square', () => {
    const root = renderFeatures(withColour());
    const rows = Array.from(root.querySelectorAll('tr.jp-aidevops-feature')) as HTMLElement[];
    expect(rows.map(r => r.dataset.feature)).toEqual(['pixel_3', 'pixel_5', 'colour', 'pixel_1', 'pixel_7']);
    expect(rows[2].textContent).toContain('drifted (psi)');
    const pixel1 = root.querySelector('tr[data-feature="pixel_1"]')!;
    expect(pixel1.querySelector('.jp-aidevops-feature-test')!.textContent).toBe('KS p = 0.200, χ² p = 0.300');
    expect(pixel1.querySelector('.jp-aidevops-categories')).toBeNull();
  });

  it('says why there is no table before the first pass', () => {
    expect(renderFeatures(null).textContent).toBe('No drift statistics yet.');
  });

  it('names no test when a feature has no statistics yet', () => {
    expect(testText({ name: 'x', status: 'insufficient data', n: 3, psi: null, psi_band: null, drifted: false })).toBe(
      '—'
    );
  });
});
