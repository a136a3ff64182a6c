/**
 * The Deploy panel's state: registered models and deployments, polled while the panel is shown (see
 * PolledModel), and the changes the panel offers, one at a time.
 */

import { AidevopsApi, Deployment, DeployRequest, RegisteredModel } from '../common/api';
import { PolledModel } from '../common/polledmodel';

export const POLL_INTERVAL_MS = 3000;

/** What the Deploy panel shows besides the status (see IViewState). */
interface IDeployState {
  models: RegisteredModel[];
  deployments: Deployment[];
}

export class DeployModel extends PolledModel<IDeployState> {
  constructor(
    readonly api: AidevopsApi,
    interval = POLL_INTERVAL_MS
  ) {
    super('aidevops:deploy-panel', interval, { models: [], deployments: [] });
  }

  deploy(request: DeployRequest): Promise<boolean> {
    const what = request.alias ? `${request.model}@${request.alias}` : `${request.model} v${request.version}`;
    return this.act(`Deploying ${what}…`, () => this.api.deploy(request));
  }

  promote(name: string): Promise<boolean> {
    return this.act(`Promoting the canary of ${name}…`, () => this.api.promote(name, 'promoted from the Deploy panel'));
  }

  rollback(name: string): Promise<boolean> {
    return this.act(`Rolling back ${name}…`, () => this.api.rollback(name, 'rolled back from the Deploy panel'));
  }

  canary(name: string, version: string, share: number): Promise<boolean> {
    return this.act(`Starting canary v${version} of ${name} at ${Math.round(share * 100)} %…`, () =>
      this.api.canary(name, version, share, 'canary from the Deploy panel')
    );
  }

  clearCanary(name: string): Promise<boolean> {
    return this.act(`Clearing the canary of ${name}…`, () =>
      this.api.clearCanary(name, 'canary cleared from the Deploy panel')
    );
  }

  approve(name: string, version: string): Promise<boolean> {
    return this.act(`Approving v${version} of ${name}…`, () =>
      this.api.approve(name, 'approved from the Deploy panel')
    );
  }

  reject(name: string, version: string): Promise<boolean> {
    return this.act(`Rejecting v${version} of ${name}…`, () => this.api.reject(name, 'rejected from the Deploy panel'));
  }

  undeploy(name: string): Promise<boolean> {
    return this.act(`Stopping ${name}…`, () => this.api.undeploy(name, 'undeployed from the Deploy panel'));
  }

  protected async fetch(): Promise<void> {
    const [models, deployments] = await Promise.all([this.api.models(), this.api.deployments()]);
    this.state.models = models;
    this.state.deployments = deployments;
  }
}
