/**
 * The Monitor panel widget (a main-area tab): its React view (./view, re-rendered on each model change,
 * see ReactPanel); "Retrain now" asks for confirmation first. The panel's node carries the picked
 * deployment and the monitor pass shown (data-deployment, data-version, data-at) for tests.
 */

import { Message } from '@lumino/messaging';
import * as React from 'react';

import { confirmed } from '../common/dialogs';
import { ReactPanel } from '../common/panel';
import { IMonitorActions } from './components';
import { MonitorModel } from './model';
import { MonitorView } from './view';

export class MonitorPanel extends ReactPanel<MonitorModel> {
  constructor(model: MonitorModel) {
    super(model);
    this.addClass('jp-aidevops-monitor');
    model.changed.connect(this.markShown, this);
    this.markShown();
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this.model.changed.disconnect(this.markShown, this);
    super.dispose();
  }

  protected render(): React.ReactElement {
    return <MonitorView state={this.model.view} actions={this.actions} />;
  }

  /** Closing the tab ends the panel (and its polling); the command opens a fresh one. */
  protected onCloseRequest(msg: Message): void {
    super.onCloseRequest(msg);
    this.dispose();
  }

  private markShown(): void {
    const { summary: s, selected } = this.model.view;
    this.node.dataset.deployment = selected ?? '';
    this.node.dataset.at = s?.at !== undefined ? String(s.at) : '';
    this.node.dataset.version = s?.version ?? '';
  }

  private async confirmRetrain(): Promise<void> {
    const dep = this.model.deployment;
    if (!dep) {
      return;
    }
    const body =
      `The pipeline that registers ${dep.model} runs again (until register) on its original data, plus ` +
      `${dep.name}'s labelled live rows where its spec says retrain: {live_labels: true}. A new version that ` +
      `passes the gate awaits approval in the Deploy panel (promote: manual), or ${dep.name} switches to it ` +
      '(promote: auto).';
    if (await confirmed(`Retrain ${dep.model} now?`, body, 'Retrain')) {
      await this.model.retrain();
    }
  }

  private readonly actions: IMonitorActions = {
    select: name => this.model.select(name),
    refresh: () => void this.model.poll.refresh(),
    retrain: () => void this.confirmRetrain()
  };
}
