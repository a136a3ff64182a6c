/**
 * How a panel says what it is doing and what went wrong: the change in progress with its spinner, an error
 * in words (role="alert", so assistive technology reads it out), both in the panel's status box, and an
 * empty list's placeholder ("Loading…" until the first answer).
 */

import * as React from 'react';

/** What is being done now, beside a spinner (role="status"). */
export function Progress(props: { children: React.ReactNode }): React.ReactElement {
  return (
    <div className="jp-aidevops-progress" role="status">
      <span className="jp-aidevops-spinner" />
      {props.children}
    </div>
  );
}

/** An error a user can act on; nothing when there is none. */
export function ErrorAlert(props: { error: string | null | undefined; testid?: string }): React.ReactElement | null {
  return props.error ? (
    <div className="jp-aidevops-error" role="alert" data-testid={props.testid}>
      {props.error}
    </div>
  ) : null;
}

/** The change in progress and the last error, in a box of class `className`. */
export function StatusBox(props: { className: string; busy: string | null; error: string | null }): React.ReactElement {
  return (
    <div className={props.className}>
      {props.busy ? <Progress>{props.busy}</Progress> : null}
      <ErrorAlert error={props.error} />
    </div>
  );
}

/** An empty list's placeholder: `empty` once the panel has an answer, "Loading…" before. */
export function EmptyList(props: { loaded: boolean; empty: string }): React.ReactElement {
  return <p className="jp-aidevops-empty">{props.loaded ? props.empty : 'Loading…'}</p>;
}
