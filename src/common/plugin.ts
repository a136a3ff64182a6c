/**
 * What the panel plugins share: the plugin itself (the API client required; the command palette, the
 * launcher and the layout restorer used when present), the command that opens a panel with its palette and
 * launcher items, and a panel kept in the left sidebar.
 */

import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { ILauncher } from '@jupyterlab/launcher';
import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { AidevopsApi } from './api';
import { notebookPath } from './drive';
import { IAidevopsApi } from './token';

/** What a panel plugin is activated with; the optional services are null where JupyterLab has none. */
export interface IPanelContext {
  app: JupyterFrontEnd;
  api: AidevopsApi;
  palette: ICommandPalette | null;
  launcher: ILauncher | null;
  restorer: ILayoutRestorer | null;
}

/** A plugin that starts with JupyterLab and calls `activate` with the API client and the optional services. */
export function panelPlugin(
  id: string,
  description: string,
  activate: (context: IPanelContext) => void
): JupyterFrontEndPlugin<void> {
  return {
    id,
    description,
    autoStart: true,
    requires: [IAidevopsApi],
    optional: [ICommandPalette, ILauncher, ILayoutRestorer],
    activate: (
      app: JupyterFrontEnd,
      api: AidevopsApi,
      palette: ICommandPalette | null,
      launcher: ILauncher | null,
      restorer: ILayoutRestorer | null
    ) => activate({ app, api, palette, launcher, restorer })
  };
}

export interface IOpenCommand {
  id: string;
  label: string;
  caption: string;
  icon: LabIcon;
  /** The place among the launcher's "Other" items. */
  launcherRank: number;
  execute: () => unknown;
}

/** The command that opens a panel, listed in the palette (under aidevops) and the launcher (under Other). */
export function addOpenCommand(context: IPanelContext, command: IOpenCommand): void {
  context.app.commands.addCommand(command.id, {
    label: command.label,
    caption: command.caption,
    icon: args => (args['isPalette'] ? undefined : command.icon),
    execute: command.execute
  });
  context.palette?.addItem({ command: command.id, category: 'aidevops' });
  context.launcher?.add({ command: command.id, category: 'Other', rank: command.launcherRank });
}

/**
 * `panel` in the left sidebar at `rank` (restored with the layout) as `panelId`, and its open command,
 * which shows it.
 */
export function addSidebarPanel(
  context: IPanelContext,
  panel: Widget,
  options: { panelId: string; rank: number; caption: string; command: Omit<IOpenCommand, 'execute'> }
): void {
  const { panelId, command } = options;
  panel.id = panelId;
  panel.title.icon = command.icon;
  panel.title.caption = options.caption;
  context.app.shell.add(panel, 'left', { rank: options.rank });
  context.restorer?.add(panel, panelId);
  addOpenCommand(context, { ...command, execute: () => context.app.shell.activateById(panelId) });
}

/** Opens a pipeline run's executed notebook (read from the runs drive, see ./drive) in a notebook tab. */
export function notebookOpener(app: JupyterFrontEnd): (runId: string, step: string, name: string) => void {
  return (runId, step, name) =>
    void app.commands.execute('docmanager:open', { path: notebookPath(runId, step, name), factory: 'Notebook' });
}
