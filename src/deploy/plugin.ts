/**
 * The Deploy panel's plugin (left sidebar, command palette, launcher); it also registers the read-only
 * drive that opens the executed notebooks of pipeline runs (../common/drive).
 */

import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { ILauncher } from '@jupyterlab/launcher';
import { ServerConnection } from '@jupyterlab/services';
import { LabIcon } from '@jupyterlab/ui-components';

import { AidevopsApi } from '../common/api';
import { notebookPath, RunsDrive } from '../common/drive';
import { IAidevopsApi } from '../common/token';
import { DeployModel } from './model';
import { DeployPanel } from './panel';

export const OPEN_COMMAND = 'aidevops:open-deploy-panel';
export const PANEL_ID = 'aidevops-deploy-panel';

const deployIcon = new LabIcon({
  name: 'aidevops:deploy',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="16"><g class="jp-icon3" fill="#616161">' +
    '<path d="M12 2c3.5 2 5 5.5 5 9.5l2.5 3v3.5l-3.5-1.5H8L4.5 18v-3.5l2.5-3C7 7.5 8.5 4 12 2zm0 6a2 2 0 100 4 2 2 0 000-4z"/>' +
    '<path d="M10 18h4l-.8 3h-2.4z"/></g></svg>'
});

export const deployPlugin: JupyterFrontEndPlugin<void> = {
  id: 'aidevops-ext:deploy-panel',
  description: 'Deploy, canary, promote and roll back registered models; open the notebooks that produced them.',
  autoStart: true,
  requires: [IAidevopsApi],
  optional: [ICommandPalette, ILauncher, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    api: AidevopsApi,
    palette: ICommandPalette | null,
    launcher: ILauncher | null,
    restorer: ILayoutRestorer | null
  ) => {
    app.serviceManager.contents.addDrive(new RunsDrive(api, ServerConnection.makeSettings()));

    const model = new DeployModel(api);
    const panel = new DeployPanel(model, (runId, step, name) => {
      void app.commands.execute('docmanager:open', { path: notebookPath(runId, step, name), factory: 'Notebook' });
    });
    panel.id = PANEL_ID;
    panel.title.icon = deployIcon;
    panel.title.caption = 'aidevops: Deploy';
    app.shell.add(panel, 'left', { rank: 650 });
    restorer?.add(panel, PANEL_ID);

    app.commands.addCommand(OPEN_COMMAND, {
      label: 'Deploy Panel',
      caption: 'Open the aidevops Deploy panel: models, deployments, canary, rollback',
      icon: args => (args['isPalette'] ? undefined : deployIcon),
      execute: () => app.shell.activateById(PANEL_ID)
    });
    palette?.addItem({ command: OPEN_COMMAND, category: 'aidevops' });
    launcher?.add({ command: OPEN_COMMAND, category: 'Other', rank: 1 });
  }
};
