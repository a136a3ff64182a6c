/** The run diff tab's header (./difftab), built with h(): the two runs, the step, the params that differ. */

import { RunDiff } from '../common/api';
import { h } from '../common/dom';
import { formatValue } from './format';

/** The diff tab's header: the two runs, a step selector when they share several steps, and the params that differ. */
export function renderDiffHeader(
  diff: RunDiff,
  onStep: (step: string) => void,
  error: string | null = null
): HTMLElement {
  const header = h(
    'div',
    { class: 'jp-aidevops-diff-header', 'data-base': diff.base, 'data-remote': diff.remote, 'data-step': diff.step },
    h(
      'div',
      { class: 'jp-aidevops-diff-runs' },
      h('span', { class: 'jp-aidevops-diff-base' }, 'base ', h('code', {}, diff.base)),
      ' → ',
      h('span', { class: 'jp-aidevops-diff-remote' }, 'remote ', h('code', {}, diff.remote))
    )
  );
  const steps = diff.steps?.length ? diff.steps : [diff.step];
  if (steps.length > 1) {
    const select = h('select', {
      class: 'jp-aidevops-diff-step',
      title: 'The step whose executed notebooks are compared'
    });
    for (const step of steps) {
      const option = h('option', { value: step }, step);
      option.selected = step === diff.step;
      select.append(option);
    }
    select.addEventListener('change', () => onStep(select.value));
    header.append(h('label', { class: 'jp-aidevops-diff-step-label' }, 'Step ', select));
  } else {
    header.append(
      h(
        'span',
        { class: 'jp-aidevops-diff-step-label' },
        'Step ',
        h('code', { class: 'jp-aidevops-diff-step-name' }, diff.step)
      )
    );
  }
  const changed = Object.entries(diff.params || {});
  const params = h('div', { class: 'jp-aidevops-diff-params' });
  if (changed.length) {
    params.append(h('span', { class: 'jp-aidevops-muted' }, 'Params that differ: '));
    for (const [key, [base, remote]] of changed) {
      params.append(
        h(
          'span',
          { class: 'jp-aidevops-diff-param', 'data-param': key },
          `${key}: ${formatValue(base)} → ${formatValue(remote)}`
        )
      );
    }
  } else {
    params.append(h('span', { class: 'jp-aidevops-muted' }, 'Both runs used the same params.'));
  }
  header.append(params);
  if (error) {
    header.append(h('div', { class: 'jp-aidevops-error', role: 'alert' }, error));
  }
  return header;
}
