/**
 * DOM building for the parts drawn without React (dialogs' bodies, the diff tab's header): `h()` builds an
 * element. BUTTON_CLASS is every aidevops button's look (the React `Button` in ./button).
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
