/**
 * DOM components of the Deploy panel: plain functions from state to elements (no framework), so a
 * re-render after each model change is one call and the pieces can be checked in jsdom.
 */

import { Deployment, HistoryEntry, ModelVersion, RegisteredModel } from './api';
import { replaceKeepingState } from './keepstate';

/** What a user can ask the panel to do; the panel confirms and runs it. */
export interface IActions {
  deploy(model: RegisteredModel, version: ModelVersion): void;
  canary(deployment: Deployment, version: ModelVersion): void;
  promote(deployment: Deployment): void;
  clearCanary(deployment: Deployment): void;
  rollback(deployment: Deployment): void;
  undeploy(deployment: Deployment): void;
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

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Record<string, string> = {},
  ...children: (Node | string | null | undefined | false)[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === 'class') {
      el.className = value;
    } else {
      el.setAttribute(key, value);
    }
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) {
      continue;
    }
    el.append(typeof child === 'string' ? document.createTextNode(child) : child);
  }
  return el;
}

/** A JupyterLab-styled button: the one all three panels use. */
export function button(label: string, cls: string, onClick: () => void, title = '', disabled = false): HTMLButtonElement {
  const b = h('button', { class: `jp-Button jp-mod-styled jp-aidevops-button ${cls}`, type: 'button' }, label);
  if (title) {
    b.title = title;
  }
  b.disabled = disabled;
  b.addEventListener('click', onClick);
  return b;
}

/**
 * Show `state` in the panel's node. The panel calls this on every model change (each poll); the user's
 * open "Try it", closed History, scroll position and focus are kept (see ./keepstate).
 */
export function showPanel(host: HTMLElement, state: IViewState, actions: IActions): void {
  replaceKeepingState(host, renderPanel(state, actions));
}

/** The whole panel body. */
export function renderPanel(state: IViewState, actions: IActions): HTMLElement {
  const idle = state.busy === null;
  return h(
    'div',
    { class: 'jp-aidevops-body' },
    h(
      'div',
      { class: 'jp-aidevops-header' },
      h('h2', {}, 'Deploy'),
      button('Refresh', 'jp-aidevops-refresh', () => actions.refresh(), 'Reload models and deployments now')
    ),
    renderStatus(state),
    h('h3', {}, 'Deployments'),
    renderDeployments(state.deployments, state.models, actions, idle, state.loaded),
    h('h3', {}, 'Registered models'),
    renderModels(state.models, state.deployments, actions, idle, state.loaded)
  );
}

export function renderStatus(state: IViewState): HTMLElement {
  const box = h('div', { class: 'jp-aidevops-status' });
  if (state.busy) {
    box.append(
      h('div', { class: 'jp-aidevops-progress', role: 'status' }, h('span', { class: 'jp-aidevops-spinner' }), state.busy)
    );
  }
  if (state.error) {
    box.append(h('div', { class: 'jp-aidevops-error', role: 'alert' }, state.error));
  }
  return box;
}

export function liveDeploymentOf(model: string, deployments: Deployment[]): Deployment | undefined {
  return deployments.find(d => d.model === model && d.target === 'local' && (d.state === 'running' || d.state === 'restarting'));
}

export function keyMetrics(metrics: Record<string, number>): [string, number][] {
  const names = Object.keys(metrics).filter(k => typeof metrics[k] === 'number' && isFinite(metrics[k]));
  const ordered = [
    ...PREFERRED_METRICS.filter(k => names.includes(k)),
    ...names.filter(k => !PREFERRED_METRICS.includes(k)).sort()
  ];
  return ordered.slice(0, KEY_METRICS).map(k => [k, metrics[k]]);
}

export function gateBadge(version: ModelVersion): HTMLElement {
  const [label, cls] =
    version.gate_passed === true ? ['gate passed', 'jp-mod-passed'] : version.gate_passed === false ? ['gate failed', 'jp-mod-failed'] : ['not gated', 'jp-mod-unknown'];
  const badge = h('span', { class: `jp-aidevops-badge jp-aidevops-gate ${cls}` }, label);
  if (version.gate_reasons) {
    badge.title = version.gate_reasons;
  }
  return badge;
}

/**
 * The gate cell: the badge and, beside it, the gate's own comparison ("accuracy 0.9543 vs v1 0.9600 on
 * 350 rows"): both models scored on the same rows, which the version's own metrics column is not.
 */
export function gateCell(version: ModelVersion): HTMLElement {
  const cell = h('td', { class: 'jp-aidevops-gate-cell', 'data-label': 'Gate' }, gateBadge(version));
  const summary = version.gate_summary ?? version.gate_comparison?.summary ?? null;
  if (summary) {
    const line = h('div', { class: 'jp-aidevops-gate-summary', 'data-testid': 'gate-summary' }, summary);
    const on = version.gate_comparison?.compared_on;
    if (on) {
      line.title = `compared on ${on}`;
    }
    cell.append(line);
  }
  return cell;
}

export function renderModels(
  models: RegisteredModel[],
  deployments: Deployment[],
  actions: IActions,
  idle: boolean,
  loaded: boolean
): HTMLElement {
  if (!models.length) {
    return h('p', { class: 'jp-aidevops-empty' }, loaded ? 'No registered models yet: run a pipeline (`aidevops run`) to register one.' : 'Loading…');
  }
  return h('div', { class: 'jp-aidevops-models' }, ...models.map(m => renderModel(m, liveDeploymentOf(m.name, deployments), actions, idle)));
}

function renderModel(model: RegisteredModel, live: Deployment | undefined, actions: IActions, idle: boolean): HTMLElement {
  const table = h(
    'table',
    { class: 'jp-aidevops-table jp-aidevops-versions' },
    h('thead', {}, h('tr', {}, h('th', {}, 'Version'), h('th', {}, 'Aliases'), h('th', {}, 'Gate'), h('th', {}, 'Metrics'), h('th', {}, 'Produced by'), h('th', {}, '')))
  );
  const body = h('tbody');
  for (const version of model.versions) {
    body.append(renderVersion(model, version, live, actions, idle));
  }
  table.append(body);
  return h('section', { class: 'jp-aidevops-model', 'data-model': model.name }, h('h4', {}, model.name), table);
}

function renderVersion(model: RegisteredModel, version: ModelVersion, live: Deployment | undefined, actions: IActions, idle: boolean): HTMLElement {
  const aliases = h('td', { 'data-label': 'Aliases' }, ...version.aliases.map(a => h('span', { class: `jp-aidevops-badge jp-aidevops-alias jp-mod-${a}` }, a)));
  const metrics = h(
    'td',
    { class: 'jp-aidevops-metrics', 'data-label': 'Metrics' },
    ...keyMetrics(version.metrics || {}).map(([k, v]) => h('span', { class: 'jp-aidevops-metric', title: k }, `${k} ${v.toFixed(4)}`))
  );
  const lineage = version.lineage;
  const produced = h('td', { class: 'jp-aidevops-lineage', 'data-label': 'Produced by' });
  if (lineage?.pipeline_run_id) {
    produced.append(h('div', { class: 'jp-aidevops-run', title: `git ${lineage.git_commit ?? '?'}${lineage.git_dirty === 'True' ? ' (dirty)' : ''}` }, `${lineage.pipeline ?? 'pipeline'} run ${lineage.pipeline_run_id}`));
    const links = h('div', { class: 'jp-aidevops-notebooks' }, h('span', { class: 'jp-aidevops-muted' }, 'notebooks: '));
    for (const nb of lineage.notebooks) {
      if (nb.available) {
        const link = h('a', { class: 'jp-aidevops-notebook-link', href: '#', 'data-step': nb.step, title: `Open the executed ${nb.name} of run ${lineage.pipeline_run_id}` }, nb.step);
        link.addEventListener('click', event => {
          event.preventDefault();
          actions.openNotebook(lineage.pipeline_run_id as string, nb.step, nb.name);
        });
        links.append(link);
      } else {
        links.append(h('span', { class: 'jp-aidevops-notebook-missing', title: 'This run is not in this workspace' }, nb.step));
      }
    }
    produced.append(links);
  } else {
    produced.append(h('span', { class: 'jp-aidevops-muted' }, lineage?.source === 'interactive' ? 'an interactive session' : 'unknown'));
  }
  const buttons = h('td', { class: 'jp-aidevops-actions' });
  const isActive = live?.active_version === version.version;
  if (!live) {
    buttons.append(button('Deploy', 'jp-aidevops-deploy', () => actions.deploy(model, version), `Serve ${model.name} ${version.aliases.length ? '@' + preferredAlias(version) : 'v' + version.version} on a local server`, !idle));
  } else if (isActive) {
    buttons.append(h('span', { class: 'jp-aidevops-badge jp-aidevops-serving' }, `serving in ${live.name}`));
  } else {
    buttons.append(button('Switch', 'jp-aidevops-switch', () => actions.deploy(model, version), `Make v${version.version} the active version of ${live.name}`, !idle));
    if (!live.canary_version) {
      buttons.append(button('Canary…', 'jp-aidevops-canary', () => actions.canary(live, version), `Send a share of ${live.name}'s traffic to v${version.version}`, !idle));
    } else if (live.canary_version === version.version) {
      buttons.append(h('span', { class: 'jp-aidevops-badge jp-aidevops-canary-badge' }, `canary ${pct(live.canary_share)}`));
    }
  }
  return h(
    'tr',
    { class: 'jp-aidevops-version', 'data-version': version.version },
    h('td', { class: 'jp-aidevops-version-number', 'data-label': 'Version' }, `v${version.version}`),
    aliases,
    gateCell(version),
    metrics,
    produced,
    buttons
  );
}

/** The alias a deploy of this version follows: champion first, then any. */
export function preferredAlias(version: ModelVersion): string | undefined {
  return version.aliases.includes('champion') ? 'champion' : version.aliases[0];
}

export function pct(share: number): string {
  return `${Math.round(share * 1000) / 10} %`;
}

export function renderDeployments(
  deployments: Deployment[],
  models: RegisteredModel[],
  actions: IActions,
  idle: boolean,
  loaded: boolean
): HTMLElement {
  if (!deployments.length) {
    return h('p', { class: 'jp-aidevops-empty' }, loaded ? 'No deployments yet: deploy a registered version below.' : 'Loading…');
  }
  return h('div', { class: 'jp-aidevops-deployments' }, ...deployments.map(d => renderDeployment(d, actions, idle)));
}

function healthBadge(d: Deployment): HTMLElement {
  const cls = d.health === 'healthy' ? 'jp-mod-passed' : d.health === 'stopped' ? 'jp-mod-unknown' : 'jp-mod-failed';
  return h('span', { class: `jp-aidevops-badge jp-aidevops-health ${cls}`, title: d.error ?? '' }, d.health);
}

function renderDeployment(d: Deployment, actions: IActions, idle: boolean): HTMLElement {
  const live = d.state === 'running' || d.state === 'restarting';
  const facts = h(
    'dl',
    { class: 'jp-aidevops-facts' },
    h('dt', {}, 'Serves'),
    h('dd', {}, d.ref),
    h('dt', {}, 'Endpoint'),
    h('dd', {}, d.url ? h('code', { class: 'jp-aidevops-endpoint' }, d.endpoints.invocations ?? d.url) : '—'),
    h('dt', {}, 'Active'),
    h('dd', { class: 'jp-aidevops-active' }, d.active_version ? `v${d.active_version}` : '—'),
    h('dt', {}, 'Previous'),
    h('dd', { class: 'jp-aidevops-previous' }, d.previous_version ? `v${d.previous_version}` : '—'),
    h('dt', {}, 'Canary'),
    h('dd', { class: 'jp-aidevops-canary-share' }, d.canary_version ? `v${d.canary_version} gets ${pct(d.canary_share)} of requests` : '—')
  );
  const buttons = h('div', { class: 'jp-aidevops-actions' });
  if (live) {
    if (d.canary_version) {
      buttons.append(button('Promote canary', 'jp-aidevops-promote', () => actions.promote(d), `Make v${d.canary_version} the active version`, !idle));
      buttons.append(button('Clear canary', 'jp-aidevops-clear-canary', () => actions.clearCanary(d), `Send all traffic to v${d.active_version}`, !idle));
    }
    if (d.previous_version) {
      buttons.append(button('Roll back', 'jp-aidevops-rollback', () => actions.rollback(d), `Swap back to v${d.previous_version}`, !idle));
    }
    buttons.append(button('Undeploy', 'jp-aidevops-undeploy', () => actions.undeploy(d), 'Stop the server (the history stays)', !idle));
  }
  return h(
    'section',
    { class: 'jp-aidevops-deployment', 'data-deployment': d.name },
    h('h4', {}, d.name, ' ', healthBadge(d)),
    d.error ? h('div', { class: 'jp-aidevops-error', role: 'alert' }, d.error) : null,
    facts,
    d.example
      ? h('details', { class: 'jp-aidevops-example', 'data-keep': `example:${d.name}` }, h('summary', {}, 'Try it'), h('pre', { 'data-keep': `example-text:${d.name}` }, d.example.curl))
      : null,
    buttons,
    renderHistory(d.history, d.name)
  );
}

export function renderHistory(rows: HistoryEntry[], deployment = ''): HTMLElement {
  const table = h(
    'table',
    { class: 'jp-aidevops-table jp-aidevops-history' },
    h('thead', {}, h('tr', {}, h('th', {}, 'When'), h('th', {}, 'Change'), h('th', {}, 'Versions'), h('th', {}, 'By'), h('th', {}, 'Why')))
  );
  const body = h('tbody');
  for (const row of rows) {
    const change = `${row.from_version ? 'v' + row.from_version : '—'} → ${row.to_version ? 'v' + row.to_version : '—'}`;
    body.append(
      h(
        'tr',
        { class: `jp-aidevops-history-row ${row.ok ? '' : 'jp-mod-refused'}`, 'data-operation': row.operation },
        h('td', { 'data-label': 'When' }, row.when.replace('T', ' ').slice(0, 19)),
        h('td', { 'data-label': 'Change' }, row.operation + (row.ok ? '' : ' (refused)')),
        h('td', { 'data-label': 'Versions' }, change),
        h('td', { class: 'jp-aidevops-history-actor', 'data-label': 'By' }, row.actor),
        h('td', { class: 'jp-aidevops-history-reason', 'data-label': 'Why', title: row.detail }, row.reason)
      )
    );
  }
  table.append(body);
  return h(
    'details',
    { class: 'jp-aidevops-history-box', open: '', 'data-keep': `history:${deployment}` },
    h('summary', {}, `History (${rows.length})`),
    h('div', { class: 'jp-aidevops-scroll-x', 'data-keep': `history-scroll:${deployment}` }, table)
  );
}
