/**
 * A sidebar panel's header: its title, the Refresh button, then the panel's own buttons.
 */

import * as React from 'react';

import { Button } from './button';

export function PanelHeader(props: {
  title: string;
  refresh: () => void;
  /** The Refresh button's tooltip: what it reloads. */
  refreshTitle: string;
  children?: React.ReactNode;
}): React.ReactElement {
  return (
    <div className="jp-aidevops-header">
      <h2>{props.title}</h2>
      <Button label="Refresh" cls="jp-aidevops-refresh" onClick={props.refresh} title={props.refreshTitle} />
      {props.children}
    </div>
  );
}
