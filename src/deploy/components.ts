/**
 * The Deploy panel's state, actions and pure helpers (its React view is ./view).
 */

import { Deployment, ModelVersion, RegisteredModel } from '../common/api';

/** What a user can ask the panel to do; the panel confirms and runs it. */
export interface IActions {
  deploy(model: RegisteredModel, version: ModelVersion): void;
  canary(deployment: Deployment, version: ModelVersion): void;
  promote(deployment: Deployment): void;
  clearCanary(deployment: Deployment): void;
  rollback(deployment: Deployment): void;
  undeploy(deployment: Deployment): void;
  approve(deployment: Deployment): void;
  reject(deployment: Deployment): void;
  openNotebook(runId: string, step: string, name: string): void;
  refresh(): void;
}

export interface IViewState {
  models: RegisteredModel[];
  deployments: Deployment[];
  error: string | null;
  busy: string | null;
  loaded: boolean;
}

/** Metrics shown first when a version has them (the rest follow alphabetically, up to KEY_METRICS). */
const PREFERRED_METRICS = ['accuracy', 'f1_macro', 'log_loss', 'rmse', 'r2'];
const KEY_METRICS = 3;

export function liveDeploymentOf(model: string, deployments: Deployment[]): Deployment | undefined {
  return deployments.find(
    d => d.model === model && d.target === 'local' && (d.state === 'running' || d.state === 'restarting')
  );
}

export function keyMetrics(metrics: Record<string, number>): [string, number][] {
  const names = Object.keys(metrics).filter(k => typeof metrics[k] === 'number' && isFinite(metrics[k]));
  const ordered = [
    ...PREFERRED_METRICS.filter(k => names.includes(k)),
    ...names.filter(k => !PREFERRED_METRICS.includes(k)).sort()
  ];
  return ordered.slice(0, KEY_METRICS).map(k => [k, metrics[k]]);
}

/** The alias a deploy of this version follows: champion first, then any. */
export function preferredAlias(version: ModelVersion): string | undefined {
  return version.aliases.includes('champion') ? 'champion' : version.aliases[0];
}

export function pct(share: number): string {
  return `${Math.round(share * 1000) / 10} %`;
}
