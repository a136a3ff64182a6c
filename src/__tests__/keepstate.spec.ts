/**
 * @jest-environment jsdom
 */

import { captureState, replaceKeepingState } from '../common/keepstate';

/** A stand-in for a panel body rebuilt from state: details, a typed input, a scrolled box; `text` varies per poll. */
function body(text: string, value = ''): HTMLElement {
  const root = document.createElement('div');
  root.innerHTML =
    `<p class="text">${text}</p>` +
    '<details data-keep="try"><summary>Try it</summary><pre>curl …</pre></details>' +
    '<details data-keep="history" open><summary>History</summary></details>' +
    `<input data-keep="filter" value="${value}">` +
    '<input type="checkbox" data-keep="pick">' +
    '<div data-keep="box" class="box"></div>';
  return root;
}

function host(): HTMLElement {
  const el = document.createElement('div');
  document.body.replaceChildren(el);
  return el;
}

describe('replaceKeepingState', () => {
  it('keeps an opened details, a closed one, typed text, its caret and the focus across a re-render with new content', () => {
    const el = host();
    replaceKeepingState(el, body('poll 1'));
    (el.querySelector('[data-keep="try"]') as HTMLDetailsElement).open = true;
    (el.querySelector('[data-keep="history"]') as HTMLDetailsElement).open = false;
    const input = el.querySelector('[data-keep="filter"]') as HTMLInputElement;
    input.focus();
    input.value = 'digits';
    input.setSelectionRange(2, 4);
    (el.querySelector('[data-keep="box"]') as HTMLElement).scrollTop = 40;

    replaceKeepingState(el, body('poll 2'));

    expect(el.querySelector('.text')!.textContent).toBe('poll 2'); // the new content is shown
    expect((el.querySelector('[data-keep="try"]') as HTMLDetailsElement).open).toBe(true);
    expect((el.querySelector('[data-keep="history"]') as HTMLDetailsElement).open).toBe(false);
    const again = el.querySelector('[data-keep="filter"]') as HTMLInputElement;
    expect(again).not.toBe(input); // a rebuilt element …
    expect(again.value).toBe('digits'); // … with what the user typed
    expect(document.activeElement).toBe(again);
    expect([again.selectionStart, again.selectionEnd]).toEqual([2, 4]);
    expect((el.querySelector('[data-keep="box"]') as HTMLElement).scrollTop).toBe(40);
  });

  it('lets an input the user did not touch take the newly rendered value', () => {
    const el = host();
    replaceKeepingState(el, body('poll 1', 'old'));
    replaceKeepingState(el, body('poll 2', 'new'));
    expect((el.querySelector('[data-keep="filter"]') as HTMLInputElement).value).toBe('new');
  });

  it('does not carry a checkbox over: it mirrors model state, not typing', () => {
    const el = host();
    replaceKeepingState(el, body('poll 1'));
    (el.querySelector('[data-keep="pick"]') as HTMLInputElement).checked = true;
    expect(captureState(el).get('pick')?.value).toBeUndefined();
    replaceKeepingState(el, body('poll 2'));
    expect((el.querySelector('[data-keep="pick"]') as HTMLInputElement).checked).toBe(false);
  });

  it('leaves the shown DOM in place when a poll brings nothing new (a selection or open dropdown survives)', () => {
    const el = host();
    replaceKeepingState(el, body('same'));
    const shown = el.firstElementChild;
    (el.querySelector('[data-keep="try"]') as HTMLDetailsElement).open = true;
    replaceKeepingState(el, body('same'));
    expect(el.firstElementChild).toBe(shown);
    replaceKeepingState(el, body('changed'));
    expect(el.firstElementChild).not.toBe(shown);
    expect((el.querySelector('[data-keep="try"]') as HTMLDetailsElement).open).toBe(true);
  });
});
