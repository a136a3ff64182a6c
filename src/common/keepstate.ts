/**
 * Re-rendering that keeps what the user is doing. The Runs and Monitor panels rebuild their DOM from
 * state on every poll (plain `h()` functions, see ./components; the Deploy panel is React, which
 * reconciles instead), which on its own closes an opened <details>, drops text typed into an input,
 * moves the scroll position and loses the focus. `replaceKeepingState` carries
 * those over by key: elements that hold user state carry a `data-keep` attribute unique in the host.
 *
 * When the rebuilt content equals the shown one (same tags, attributes and text, once the carried state
 * is applied), the shown DOM is left untouched, so a text selection or an open native dropdown survives
 * a poll that changed nothing.
 */

/** What a user did to one keyed element. */
interface IKept {
  open?: boolean;
  value?: string;
  selection?: [number | null, number | null];
  scrollTop: number;
  scrollLeft: number;
}

/** Input types whose value is typed by the user (checkboxes and radios mirror model state instead). */
const TYPED = new Set(['', 'text', 'search', 'number', 'email', 'url', 'tel', 'password']);

function isTyped(el: Element): el is HTMLInputElement | HTMLTextAreaElement {
  return el instanceof HTMLTextAreaElement || (el instanceof HTMLInputElement && TYPED.has(el.type));
}

/** The user state of every `[data-keep]` element under `root`, by key. */
export function captureState(root: ParentNode): Map<string, IKept> {
  const kept = new Map<string, IKept>();
  for (const el of Array.from(root.querySelectorAll<HTMLElement>('[data-keep]'))) {
    const state: IKept = { scrollTop: el.scrollTop, scrollLeft: el.scrollLeft };
    if (el instanceof HTMLDetailsElement) {
      state.open = el.open;
    }
    // Only a value the user changed: an untouched input takes the freshly rendered one.
    if (isTyped(el)) {
      state.selection = [el.selectionStart, el.selectionEnd];
      if (el.value !== el.defaultValue) {
        state.value = el.value;
      }
    }
    kept.set(el.dataset.keep as string, state);
  }
  return kept;
}

/** Apply captured state to the keyed elements under `root` (attached or not); scroll only where attached. */
export function applyState(root: ParentNode, kept: Map<string, IKept>, scroll: boolean): void {
  for (const el of Array.from(root.querySelectorAll<HTMLElement>('[data-keep]'))) {
    const state = kept.get(el.dataset.keep as string);
    if (!state) {
      continue;
    }
    if (el instanceof HTMLDetailsElement && state.open !== undefined) {
      el.open = state.open;
    }
    if (state.value !== undefined && isTyped(el)) {
      el.value = state.value;
    }
    if (scroll) {
      el.scrollTop = state.scrollTop;
      el.scrollLeft = state.scrollLeft;
    }
  }
}

/** Put `content` in `host` in place of its children, keeping open details, typed text, scroll and focus. */
export function replaceKeepingState(host: HTMLElement, content: HTMLElement): void {
  const kept = captureState(host);
  applyState(content, kept, false);
  const shown = host.childNodes.length === 1 ? host.firstChild : null;
  if (shown && shown.isEqualNode(content)) {
    return; // nothing changed: the shown DOM (selection, focus, open dropdowns) stays as it is
  }
  const active = host.ownerDocument.activeElement as HTMLElement | null;
  const focusKey = active && host.contains(active) ? active.dataset?.keep : undefined;
  const top = host.scrollTop;
  const left = host.scrollLeft;
  host.replaceChildren(content);
  applyState(host, kept, true);
  host.scrollTop = top;
  host.scrollLeft = left;
  if (focusKey) {
    const again = Array.from(host.querySelectorAll<HTMLElement>('[data-keep]')).find(
      el => el.dataset.keep === focusKey
    );
    if (again) {
      again.focus();
      const sel = kept.get(focusKey)?.selection;
      if (sel && isTyped(again) && sel[0] !== null && sel[1] !== null) {
        again.setSelectionRange(sel[0], sel[1]);
      }
    }
  }
}
