/**
 * The Monitor panel's plugin: a main-area tab opened from the command palette or the launcher
 * ("Monitor Panel"), restored with the layout.
 */

import { WidgetTracker } from '@jupyterlab/apputils';

import { monitorIcon } from '../common/icons';
import { addOpenCommand, IPanelContext, panelPlugin } from '../common/plugin';
import { MonitorModel } from './model';
import { MonitorPanel } from './panel';

export const OPEN_MONITOR_COMMAND = 'aidevops:open-monitor-panel';
export const MONITOR_PANEL_ID = 'aidevops-monitor-panel';

function activateMonitorPanel(context: IPanelContext): void {
  const { app, api, restorer } = context;
  const tracker = new WidgetTracker<MonitorPanel>({ namespace: 'aidevops-monitor' });
  let panel: MonitorPanel | null = null;

  addOpenCommand(context, {
    id: OPEN_MONITOR_COMMAND,
    label: 'Monitor Panel',
    caption: 'Open the aidevops Monitor panel: live charts, drift, alerts, retrain',
    icon: monitorIcon,
    launcherRank: 3,
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
  if (restorer) {
    void restorer.restore(tracker, { command: OPEN_MONITOR_COMMAND, name: () => 'monitor' });
  }
}

export const monitorPlugin = panelPlugin(
  'aidevops-ext:monitor-panel',
  'Live charts of a deployment (traffic, latency, errors, accuracy, drift, predictions), its alerts, and Retrain now.',
  activateMonitorPanel
);

export default monitorPlugin;
