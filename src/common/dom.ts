/**
 * DOM building for the parts drawn without React (the Runs panel, dialogs' bodies): `h()` builds an
 * element, `button()` a JupyterLab-styled button with the classes the React `Button` (./button) uses too.
 */

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Record<string, string> = {},
  ...children: (Node | string | null | undefined | false)[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === 'class') {
      el.className = value;
    } else {
      el.setAttribute(key, value);
    }
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) {
      continue;
    }
    el.append(typeof child === 'string' ? document.createTextNode(child) : child);
  }
  return el;
}

/** The classes of every aidevops button. */
export const BUTTON_CLASS = 'jp-Button jp-mod-styled jp-aidevops-button';

/** A JupyterLab-styled button for DOM-built parts. */
export function button(
  label: string,
  cls: string,
  onClick: () => void,
  title = '',
  disabled = false
): HTMLButtonElement {
  const b = h('button', { class: `${BUTTON_CLASS} ${cls}`, type: 'button' }, label);
  if (title) {
    b.title = title;
  }
  b.disabled = disabled;
  b.addEventListener('click', onClick);
  return b;
}
