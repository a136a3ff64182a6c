/**
 * Rendering React elements into jsdom for the specs, as JupyterLab's ReactWidget does (createRoot), with
 * every update flushed by React's act(). react-dom is typed by hand: the project has no @types/react-dom.
 */

import * as React from 'react';

declare const require: (name: string) => any;

interface IRoot {
  render(element: React.ReactElement): void;
  unmount(): void;
}

const { createRoot } = require('react-dom/client') as { createRoot(container: Element): IRoot };

// Tells React that this is a test environment where act() flushes updates.
(globalThis as any).IS_REACT_ACT_ENVIRONMENT = true;

/** A container in the document and a root rendering into it. */
export function mount(element?: React.ReactElement): {
  node: HTMLElement;
  render(element: React.ReactElement): void;
  unmount(): void;
} {
  const node = document.createElement('div');
  document.body.replaceChildren(node);
  const root = createRoot(node);
  const render = (el: React.ReactElement) => React.act(() => root.render(el));
  if (element) {
    render(element);
  }
  return { node, render, unmount: () => React.act(() => root.unmount()) };
}

/** The element `element` renders to, in a fresh container. */
export function dom(element: React.ReactElement): HTMLElement {
  return mount(element).node.firstElementChild as HTMLElement;
}
