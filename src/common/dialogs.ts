/**
 * The confirmation every change in the panels asks for first.
 */

import { Dialog, showDialog } from '@jupyterlab/apputils';

/** Ask `title` with `body`; true when the user pressed `label` (a warning-coloured button when `warn`). */
export async function confirmed(title: string, body: string, label: string, warn = false): Promise<boolean> {
  const answer = await showDialog({
    title,
    body,
    buttons: [Dialog.cancelButton(), warn ? Dialog.warnButton({ label }) : Dialog.okButton({ label })]
  });
  return answer.button.accept;
}
