/**
 * The Deploy panel widget: shows the model's state in its React view (./view, re-rendered on each model
 * change, see ReactPanel), and asks for confirmation before each change.
 */

import { Dialog, InputDialog, showDialog } from '@jupyterlab/apputils';
import * as React from 'react';

import { Deployment, ModelVersion, RegisteredModel } from '../common/api';
import { confirmed } from '../common/dialogs';
import { ReactPanel } from '../common/panel';
import { IActions, liveDeploymentOf, preferredAlias } from './components';
import { DeployModel } from './model';
import { DeployView } from './view';

export class DeployPanel extends ReactPanel<DeployModel> {
  constructor(
    model: DeployModel,
    private readonly openNotebook: (runId: string, step: string, name: string) => void
  ) {
    super(model);
  }

  protected render(): React.ReactElement {
    return <DeployView state={this.model.view} actions={this.actions} />;
  }

  private readonly actions: IActions = {
    refresh: () => void this.model.poll.refresh(),
    openNotebook: (runId, step, name) => this.openNotebook(runId, step, name),
    deploy: (model, version) => void this.deploy(model, version),
    canary: (deployment, version) => void this.canary(deployment, version),
    promote: d =>
      void this.confirmThen(
        `Promote the canary of ${d.name}?`,
        `v${d.canary_version} becomes the active version; v${d.active_version} is kept for rollback.`,
        'Promote',
        () => this.model.promote(d.name)
      ),
    clearCanary: d =>
      void this.confirmThen(
        `Clear the canary of ${d.name}?`,
        `v${d.active_version} takes all traffic again.`,
        'Clear canary',
        () => this.model.clearCanary(d.name)
      ),
    rollback: d =>
      void this.confirmThen(
        `Roll back ${d.name}?`,
        `v${d.previous_version} becomes active again in place of v${d.active_version}, with no downtime.`,
        'Roll back',
        () => this.model.rollback(d.name)
      ),
    undeploy: d =>
      void this.confirmThen(
        `Undeploy ${d.name}?`,
        `Its server on ${d.url ?? 'the local machine'} stops; its history stays.`,
        'Undeploy',
        () => this.model.undeploy(d.name),
        true
      ),
    approve: d => void this.decide(d, true),
    reject: d => void this.decide(d, false)
  };

  /** Approve or reject (`approve` false) the version `d` holds for approval, once confirmed. */
  private async decide(d: Deployment, approve: boolean): Promise<void> {
    const held = d.awaiting_approval;
    if (!held) {
      return;
    }
    const v = `v${held.version}`;
    await (approve
      ? this.confirmThen(
          `Approve ${v} for ${d.name}?`,
          `${d.name} switches from v${d.active_version} to ${v} once it has loaded and passed its checks, ` +
            `and ${v} becomes ${d.model}'s champion; v${d.active_version} is kept for rollback.`,
          'Approve',
          () => this.model.approve(d.name, held.version)
        )
      : this.confirmThen(
          `Reject ${v} for ${d.name}?`,
          `${v} is not deployed; ${d.name} keeps serving v${d.active_version}. The rejection is recorded in its history.`,
          'Reject',
          () => this.model.reject(d.name, held.version),
          true
        ));
  }

  private async deploy(model: RegisteredModel, version: ModelVersion): Promise<void> {
    const live = liveDeploymentOf(model.name, this.model.view.deployments);
    const alias = live ? undefined : preferredAlias(version);
    const what = alias ? `${model.name}@${alias} (v${version.version})` : `${model.name} v${version.version}`;
    const body = live
      ? `${live.name} switches from v${live.active_version} to v${version.version} once it has loaded and passed its checks; v${live.active_version} keeps serving until then.`
      : `A local server starts on 127.0.0.1, loads ${what}, and checks its predictions against the registry's.`;
    await this.confirmThen(
      live ? `Switch ${live.name} to v${version.version}?` : `Deploy ${what}?`,
      body,
      live ? 'Switch' : 'Deploy',
      () => this.model.deploy(alias ? { model: model.name, alias } : { model: model.name, version: version.version })
    );
  }

  private async canary(d: Deployment, version: ModelVersion): Promise<void> {
    const answer = await InputDialog.getNumber({
      title: `Canary v${version.version} in ${d.name}: share of requests (%)`,
      value: 10,
      okLabel: 'Start canary'
    });
    if (!answer.button.accept || answer.value === null) {
      return;
    }
    const percent = Number(answer.value);
    if (!(percent >= 0 && percent <= 100)) {
      await showDialog({
        title: 'Canary not started',
        body: `The share must be between 0 and 100 %, not ${answer.value}.`,
        buttons: [Dialog.okButton()]
      });
      return;
    }
    await this.model.canary(d.name, version.version, percent / 100);
  }

  private async confirmThen(
    title: string,
    body: string,
    label: string,
    work: () => Promise<boolean>,
    warn = false
  ): Promise<void> {
    if (await confirmed(title, body, label, warn)) {
      await work();
    }
  }
}
