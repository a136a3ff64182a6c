/**
 * The diff of two pipeline runs in a Lab main-area tab: nbdime's own diff page (served by nbdime's
 * server extension at /nbdime/difftool) in an IFrame, under a header with a step selector and the
 * params that differ. GET diff names the notebooks and gives the page's URL.
 */

import { IFrame, MainAreaWidget } from '@jupyterlab/apputils';
import { URLExt } from '@jupyterlab/coreutils';
import { Panel, Widget } from '@lumino/widgets';

import { AidevopsApi, RunDiff } from '../common/api';
import { errorMessage } from '../common/polledmodel';
import { renderDiffHeader } from './diffheader';

export class RunsDiffView extends Panel {
  constructor(
    private readonly api: AidevopsApi,
    private readonly baseUrl: string,
    diff: RunDiff
  ) {
    super();
    this.addClass('jp-aidevops-diff');
    this.header = new Widget();
    this.header.addClass('jp-aidevops-diff-header-box');
    // nbdime's page runs its own scripts and calls /nbdime/api/diff on this server with the user's cookie.
    this.frame = new IFrame({ sandbox: ['allow-scripts', 'allow-same-origin'] });
    this.frame.addClass('jp-aidevops-diff-frame');
    this.addWidget(this.header);
    this.addWidget(this.frame);
    this.showDiff(diff);
  }

  readonly header: Widget;
  readonly frame: IFrame;

  get diff(): RunDiff {
    return this._diff as RunDiff;
  }

  /** Compare another step of the same two runs. */
  async selectStep(step: string): Promise<void> {
    const diff = this.diff;
    try {
      this.showDiff(await this.api.diff(diff.base, diff.remote, step));
    } catch (reason) {
      this.header.node.replaceChildren(renderDiffHeader(diff, s => void this.selectStep(s), errorMessage(reason)));
    }
  }

  private showDiff(diff: RunDiff): void {
    this._diff = diff;
    this.header.node.replaceChildren(renderDiffHeader(diff, s => void this.selectStep(s)));
    this.frame.url = URLExt.join(this.baseUrl, diff.url);
  }

  private _diff: RunDiff | null = null;
}

/** A main-area widget for the diff of runs base → remote. */
export function createDiffWidget(api: AidevopsApi, baseUrl: string, diff: RunDiff): MainAreaWidget<RunsDiffView> {
  const content = new RunsDiffView(api, baseUrl, diff);
  const widget = new MainAreaWidget({ content });
  widget.id = diffWidgetId(diff.base, diff.remote);
  widget.title.label = `Diff ${shortId(diff.base)} → ${shortId(diff.remote)}`;
  widget.title.caption = `nbdime diff of pipeline runs ${diff.base} (base) and ${diff.remote} (remote)`;
  widget.title.closable = true;
  widget.addClass('jp-aidevops-diff-widget');
  return widget;
}

export function diffWidgetId(base: string, remote: string): string {
  return `aidevops-diff-${base}-${remote}`.replace(/[^A-Za-z0-9_-]/g, '_');
}

/** "20261205-060143-929-282d" → "060143-282d" (time and suffix: enough to tell runs apart in a tab label). */
export function shortId(runId: string): string {
  const parts = runId.split('-');
  return parts.length === 4 ? `${parts[1]}-${parts[3]}` : runId;
}
