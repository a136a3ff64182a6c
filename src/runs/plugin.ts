/**
 * The Runs panel plugin: pipeline runs in the left sidebar (under the Deploy panel), run / re-run with
 * edited params, executed notebooks opened through the read-only runs drive that the Deploy plugin
 * registers, and nbdime diffs of two runs in main-area tabs.
 */

import { MainAreaWidget } from '@jupyterlab/apputils';
import { ServerConnection } from '@jupyterlab/services';

import { RunDiff } from '../common/api';
import { runsIcon } from '../common/icons';
import { addSidebarPanel, IPanelContext, notebookOpener, panelPlugin } from '../common/plugin';
import { createDiffWidget, diffWidgetId, RunsDiffView } from './difftab';
import { RunsModel } from './model';
import { RunsPanel } from './panel';

export const OPEN_RUNS_COMMAND = 'aidevops:open-runs-panel';
export const RUN_PIPELINE_COMMAND = 'aidevops:run-pipeline';
export const DIFF_RUNS_COMMAND = 'aidevops:diff-runs';
export const RUNS_PANEL_ID = 'aidevops-runs-panel';

function activateRunsPanel(context: IPanelContext): void {
  const { app, api, palette } = context;
  const settings = ServerConnection.makeSettings();

  const openDiff = (diff: RunDiff): void => {
    const id = diffWidgetId(diff.base, diff.remote);
    const open = Array.from(app.shell.widgets('main')).find(w => w.id === id) as
      MainAreaWidget<RunsDiffView> | undefined;
    if (open) {
      if (open.content.diff.step !== diff.step) {
        void open.content.selectStep(diff.step);
      }
      app.shell.activateById(id);
      return;
    }
    app.shell.add(createDiffWidget(api, settings.baseUrl, diff), 'main');
    app.shell.activateById(id);
  };

  const panel = new RunsPanel(new RunsModel(api), notebookOpener(app), openDiff);
  addSidebarPanel(context, panel, {
    panelId: RUNS_PANEL_ID,
    rank: 660,
    caption: 'aidevops: Runs',
    command: {
      id: OPEN_RUNS_COMMAND,
      label: 'Runs Panel',
      caption: 'Open the aidevops Runs panel: pipeline runs, step status, diffs, re-runs',
      icon: runsIcon,
      launcherRank: 2
    }
  });

  app.commands.addCommand(RUN_PIPELINE_COMMAND, {
    label: 'Run Pipeline…',
    caption: 'Start an aidevops pipeline with edited params',
    execute: async () => {
      app.shell.activateById(RUNS_PANEL_ID);
      await panel.runPipeline();
    }
  });
  app.commands.addCommand(DIFF_RUNS_COMMAND, {
    label: 'Diff Two Pipeline Runs',
    caption: 'nbdime diff of two pipeline runs (args: base, remote, step)',
    isVisible: args => typeof args['base'] === 'string' && typeof args['remote'] === 'string',
    execute: async args => {
      const diff = await api.diff(
        String(args['base']),
        String(args['remote']),
        args['step'] ? String(args['step']) : undefined
      );
      openDiff(diff);
    }
  });
  palette?.addItem({ command: RUN_PIPELINE_COMMAND, category: 'aidevops' });
}

export const runsPlugin = panelPlugin(
  'aidevops-ext:runs-panel',
  "Pipeline runs with per-step status and why each step ran; open executed notebooks, diff two runs with nbdime, re-run from a failed step or from any step, start a pipeline with edited params, the workspace's schedules.",
  activateRunsPanel
);

export default runsPlugin;
