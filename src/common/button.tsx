/**
 * The panels' React button: JupyterLab's styled button with the aidevops classes (BUTTON_CLASS).
 */

import * as React from 'react';

import { BUTTON_CLASS } from './dom';

export interface IButtonProps {
  label: string;
  cls: string;
  onClick: () => void;
  title?: string;
  disabled?: boolean;
  testid?: string;
}

export function Button(props: IButtonProps): React.ReactElement {
  return (
    <button
      type="button"
      className={`${BUTTON_CLASS} ${props.cls}`}
      title={props.title || undefined}
      disabled={!!props.disabled}
      data-testid={props.testid}
      onClick={props.onClick}
    >
      {props.label}
    </button>
  );
}
