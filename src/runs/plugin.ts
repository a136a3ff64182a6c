/**
 * The Runs panel plugin: pipeline runs in the left sidebar (under the Deploy panel), run / re-run with
 * edited params, executed notebooks opened through the read-only runs drive that the Deploy plugin
 * registers, and nbdime diffs of two runs in main-area tabs.
 */

import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget } from '@jupyterlab/apputils';
import { ILauncher } from '@jupyterlab/launcher';
import { ServerConnection } from '@jupyterlab/services';
import { LabIcon } from '@jupyterlab/ui-components';

import { AidevopsApi, RunDiff } from '../common/api';
import { IAidevopsApi } from '../common/token';
import { notebookPath } from '../common/drive';
import { createDiffWidget, diffWidgetId, RunsDiffView } from './difftab';
import { RunsModel } from './model';
import { RunsPanel } from './panel';

export const OPEN_RUNS_COMMAND = 'aidevops:open-runs-panel';
export const RUN_PIPELINE_COMMAND = 'aidevops:run-pipeline';
export const DIFF_RUNS_COMMAND = 'aidevops:diff-runs';
export const RUNS_PANEL_ID = 'aidevops-runs-panel';

const runsIcon = new LabIcon({
  name: 'aidevops:runs',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="16"><g class="jp-icon3" fill="#616161">' +
    '<circle cx="5" cy="6" r="2.5"/><circle cx="12" cy="12" r="2.5"/><circle cx="19" cy="18" r="2.5"/>' +
    '<path d="M6.5 7.5l4 3 .9-1.2-4-3zM13.5 13.5l4 3 .9-1.2-4-3z"/><rect x="2" y="20" width="20" height="1.6"/></g></svg>'
});

export const runsPlugin: JupyterFrontEndPlugin<void> = {
  id: 'aidevops-ext:runs-panel',
  description:
    "Pipeline runs with per-step status and why each step ran; open executed notebooks, diff two runs with nbdime, re-run from a failed step or from any step, start a pipeline with edited params, the workspace's schedules.",
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

    const model = new RunsModel(api);
    const panel = new RunsPanel(
      model,
      (runId, step, name) =>
        void app.commands.execute('docmanager:open', { path: notebookPath(runId, step, name), factory: 'Notebook' }),
      openDiff
    );
    panel.id = RUNS_PANEL_ID;
    panel.title.icon = runsIcon;
    panel.title.caption = 'aidevops: Runs';
    app.shell.add(panel, 'left', { rank: 660 });
    restorer?.add(panel, RUNS_PANEL_ID);

    app.commands.addCommand(OPEN_RUNS_COMMAND, {
      label: 'Runs Panel',
      caption: 'Open the aidevops Runs panel: pipeline runs, step status, diffs, re-runs',
      icon: args => (args['isPalette'] ? undefined : runsIcon),
      execute: () => app.shell.activateById(RUNS_PANEL_ID)
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
    palette?.addItem({ command: OPEN_RUNS_COMMAND, category: 'aidevops' });
    palette?.addItem({ command: RUN_PIPELINE_COMMAND, category: 'aidevops' });
    launcher?.add({ command: OPEN_RUNS_COMMAND, category: 'Other', rank: 2 });
  }
};

export default runsPlugin;
