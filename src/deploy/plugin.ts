/**
 * The Deploy panel's plugin (left sidebar, command palette, launcher); it also registers the read-only
 * drive that opens the executed notebooks of pipeline runs (../common/drive).
 */

import { ServerConnection } from '@jupyterlab/services';

import { RunsDrive } from '../common/drive';
import { deployIcon } from '../common/icons';
import { addSidebarPanel, IPanelContext, notebookOpener, panelPlugin } from '../common/plugin';
import { DeployModel } from './model';
import { DeployPanel } from './panel';

export const OPEN_COMMAND = 'aidevops:open-deploy-panel';
export const PANEL_ID = 'aidevops-deploy-panel';

function activateDeployPanel(context: IPanelContext): void {
  const { app, api } = context;
  app.serviceManager.contents.addDrive(new RunsDrive(api, ServerConnection.makeSettings()));
  const panel = new DeployPanel(new DeployModel(api), notebookOpener(app));
  addSidebarPanel(context, panel, {
    panelId: PANEL_ID,
    rank: 650,
    caption: 'aidevops: Deploy',
    command: {
      id: OPEN_COMMAND,
      label: 'Deploy Panel',
      caption: 'Open the aidevops Deploy panel: models, deployments, canary, rollback',
      icon: deployIcon,
      launcherRank: 1
    }
  });
}

export const deployPlugin = panelPlugin(
  'aidevops-ext:deploy-panel',
  'Deploy, canary, promote and roll back registered models; open the notebooks that produced them.',
  activateDeployPanel
);
