/**
 * Answers shaped like the REST contract that more than one panel's specs use: a deployment, a row of its
 * history, and a background job. Each is a complete answer; a spec overrides only what it is about.
 */

import { Deployment, HistoryEntry, Job } from '../common/api';

/** GET deployments/{name}: a healthy local deployment of ci-digits@champion, serving v1. */
export function deploymentAnswer(extra: Partial<Deployment> = {}): Deployment {
  return {
    name: 'ci-digits',
    model: 'ci-digits',
    ref: 'ci-digits@champion',
    target: 'local',
    state: 'running',
    health: 'healthy',
    error: null,
    url: 'http://127.0.0.1:5000',
    endpoints: { invocations: 'http://127.0.0.1:5000/invocations' },
    active_version: '1',
    previous_version: null,
    canary_version: null,
    canary_share: 0,
    restarts: 0,
    example: null,
    history: [],
    ...extra
  };
}

/** One row of a deployment's history: v1 deployed by "me". */
export function historyEntry(extra: Partial<HistoryEntry> = {}): HistoryEntry {
  return {
    deployment: 'ci-digits',
    when: '2026-11-23T10:00:00+0000',
    ts: 0,
    operation: 'deploy',
    from_version: null,
    to_version: '1',
    reason: 'r',
    actor: 'me',
    ok: true,
    detail: '',
    ...extra
  };
}

/** A background job as POST answers it: `run ci`, still running. */
export function jobAnswer(extra: Partial<Job> = {}): Job {
  return {
    id: 'j1',
    kind: 'run',
    argv: ['run', 'ci'],
    started: 1,
    finished: null,
    pid: 1,
    status: 'running',
    exit_code: null,
    pipeline: 'ci',
    deployment: null,
    run_id: null,
    message: '',
    ...extra
  };
}
