/**
 * The Monitor panel's plugin: a main-area tab opened from the command palette or the launcher
 * ("Monitor Panel"), restored with the layout.
 */

import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, WidgetTracker } from '@jupyterlab/apputils';
import { ILauncher } from '@jupyterlab/launcher';
import { LabIcon } from '@jupyterlab/ui-components';

import { AidevopsApi } from '../common/api';
import { IAidevopsApi } from '../common/token';
import { MonitorModel } from './model';
import { MonitorPanel } from './panel';

export const OPEN_MONITOR_COMMAND = 'aidevops:open-monitor-panel';
export const MONITOR_PANEL_ID = 'aidevops-monitor-panel';

const monitorIcon = new LabIcon({
  name: 'aidevops:monitor',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="16"><g class="jp-icon3" fill="#616161">' +
    '<path d="M3 4h18v13H3zm2 2v9h14V6zm1 7l3-4 3 2 4-5 1 1-5 6-3-2-2 3zM8 19h8v2H8z"/></g></svg>'
});

export const monitorPlugin: JupyterFrontEndPlugin<void> = {
  id: 'aidevops-ext:monitor-panel',
  description:
    'Live charts of a deployment (traffic, latency, errors, accuracy, drift, predictions), its alerts, and Retrain now.',
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
    const tracker = new WidgetTracker<MonitorPanel>({ namespace: 'aidevops-monitor' });
    let panel: MonitorPanel | null = null;

    app.commands.addCommand(OPEN_MONITOR_COMMAND, {
      label: 'Monitor Panel',
      caption: 'Open the aidevops Monitor panel: live charts, drift, alerts, retrain',
      icon: args => (args['isPalette'] ? undefined : monitorIcon),
      execute: () => {
        if (!panel || panel.isDisposed) {
          const model = new MonitorModel(api);
          panel = new MonitorPanel(model);
          panel.id = MONITOR_PANEL_ID;
          panel.title.label = 'Monitor';
          panel.title.icon = monitorIcon;
          panel.title.caption = 'aidevops: Monitor';
          panel.title.closable = true;
          panel.disposed.connect(() => model.dispose());
          void tracker.add(panel);
        }
        if (!panel.isAttached) {
          app.shell.add(panel, 'main');
        }
        app.shell.activateById(panel.id);
        return panel;
      }
    });
    palette?.addItem({ command: OPEN_MONITOR_COMMAND, category: 'aidevops' });
    launcher?.add({ command: OPEN_MONITOR_COMMAND, category: 'Other', rank: 3 });
    if (restorer) {
      void restorer.restore(tracker, { command: OPEN_MONITOR_COMMAND, name: () => 'monitor' });
    }
  }
};

export default monitorPlugin;
