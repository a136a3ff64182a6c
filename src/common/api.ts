/**
 * Typed client of the aidevops REST API (/aidevops/api/, see aidevops_ext/openapi/aidevops-api.yaml).
 *
 * It takes a `Fetcher` instead of importing @jupyterlab/services so that it runs unchanged under jest;
 * the plugin passes one built on ServerConnection.makeRequest (which adds the token and XSRF header).
 */

export type Fetcher = (path: string, init: RequestInit) => Promise<Response>;

/** An error the server explained in one sentence (4xx), or a transport failure (status 0). */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export interface RunNotebook {
  step: string;
  name: string;
  available: boolean;
  status?: string | null;
}

export interface Lineage {
  pipeline: string | null;
  pipeline_run_id: string | null;
  git_commit: string | null;
  git_dirty: string | null;
  data_hash: string | null;
  source: string | null;
  run_in_workspace: boolean;
  notebooks: RunNotebook[];
}

export interface ModelVersion {
  version: string;
  aliases: string[];
  run_id: string | null;
  created: string | null;
  status: string | null;
  gate_passed: boolean | null;
  gate_reasons: string | null;
  /** The gate's own comparison in one line, e.g. "accuracy 0.9638 vs v1 0.9499 on 359 rows" (null when not gated). */
  gate_summary?: string | null;
  gate_comparison?: GateComparison | null;
  metrics: Record<string, number>;
  lineage: Lineage;
}

/** What the gate compared for a version: both models' metrics on the same test rows, and which rows. */
export interface GateComparison {
  summary: string | null;
  compared_on: string | null;
  candidate: Record<string, number | null>;
  champion: Record<string, number | null> | null;
  champion_version: string | null;
  rows: Record<string, unknown> | null;
}

export interface RegisteredModel {
  name: string;
  description: string;
  aliases: Record<string, string>;
  versions: ModelVersion[];
}

export interface HistoryEntry {
  deployment: string;
  when: string;
  ts: number;
  operation: string;
  from_version: string | null;
  to_version: string | null;
  reason: string;
  actor: string;
  ok: boolean;
  detail: string;
}

export interface Deployment {
  name: string;
  model: string;
  ref: string;
  target: string;
  state: string;
  health: string;
  error: string | null;
  url: string | null;
  endpoints: { invocations?: string; v2_infer?: string; metrics?: string };
  active_version: string | null;
  previous_version: string | null;
  canary_version: string | null;
  canary_share: number;
  restarts: number;
  example: { body: unknown; curl: string } | null;
  history: HistoryEntry[];
  /** A retrained version held for a person (`promote: manual`), with its evidence; null when none. */
  awaiting_approval?: AwaitingApproval | null;
}

/** The gate's decision on a version that awaits approval. */
export interface ApprovalGate {
  passed: boolean | null;
  /** e.g. "accuracy 0.9638 vs v1 0.9499 on 359 rows". */
  summary: string | null;
  reasons: string[];
  compared_on: string | null;
  comparison: Record<string, unknown> | null;
}

/** What a person weighs before approving a retrained version: the gate, what started it, the live rows it learnt. */
export interface AwaitingApproval {
  version: string;
  from_version: string | null;
  retraining: number;
  pipeline_run_id: string | null;
  gate: ApprovalGate;
  trigger: string;
  rule: string | null;
  live_rows: number;
  /** When the oldest of those rows was logged (ISO 8601). */
  live_since: string | null;
  /** When it began to await approval (ISO 8601). */
  since: string | null;
}

export interface DeployRequest {
  model: string;
  alias?: string;
  version?: string;
  name?: string;
  reason?: string;
}

export interface DeployResult {
  action: string;
  version: string;
  previous: string | null;
  detail: string;
  verified: boolean;
  deployment: Deployment;
}

export interface ChangeResult {
  event: HistoryEntry;
  deployment: Deployment;
}

export interface RunSummary {
  run_id: string;
  pipeline: string | null;
  status: string | null;
  started: string | null;
  finished: string | null;
  duration_s: number | null;
  steps: Record<string, RunStep>;
  notebooks: RunNotebook[];
  // Runs panel fields (GET runs / runs/{id}); optional so older servers still type-check.
  resumed_from?: string | null;
  overrides?: Record<string, unknown>;
  params?: Record<string, unknown>;
}

// ---- Runs (Runs panel: pipeline runs, background jobs, nbdime diff) -------------------------------

/** One step of a pipeline run as the run record has it. */
export interface RunStep {
  status: string | null; // pending | not selected | running | ran | cached | failed
  error: string | null;
  cache?: string | null; // hit | miss | null
  duration_s?: number | null;
  params?: Record<string, unknown>;
  /** Why it ran (what changed since its last run), or which run's output it reused (pipeline/why.py). */
  why?: string[];
}

/** GET schedules: a pipeline the workspace's scheduler runs on a cron (`aidevops schedule add`). */
export interface Schedule {
  name: string;
  pipeline: string;
  cron: string;
  params: Record<string, unknown>;
  notify: string | null;
  next_run: string | null; // ISO 8601, UTC
  last_run: string | null;
  last_status: string | null;
  last_run_id: string | null;
}

// Job (GET jobs/{id}, with log_tail and run) is declared in the Monitor section below; both panels follow jobs.

/** GET diff: two runs' notebooks of one step, as nbdime's own diff page shows them. */
export interface RunDiff {
  base: string;
  remote: string;
  step: string;
  steps: string[];
  base_path: string;
  remote_path: string;
  url: string; // relative to the Jupyter base URL
  params: Record<string, [unknown, unknown]>;
}
// ---- end Runs -------------------------------------------------------------------------------------

// ---------------------------------------------------------------- Monitor (Monitor panel; see the REST contract)

export interface MonitorRule {
  name: string;
  metric: string;
  op: string;
  threshold: number;
  any_feature?: boolean;
  features?: string[] | null;
  for_windows?: number;
  action?: string | null;
  [key: string]: unknown;
}

export interface MonitorSettings {
  window: number;
  min_rows: number;
  min_labels: number;
  psi_bands: [number, number];
  alpha?: number;
  wasserstein_threshold?: number;
  missing_threshold?: number;
  rules: MonitorRule[];
}

export interface FeatureDrift {
  name: string;
  status: string;
  n: number;
  psi: number | null;
  psi_band: string | null;
  ks_statistic?: number | null;
  ks_pvalue?: number | null;
  wasserstein_std?: number | null;
  mean_shift_std?: number | null;
  chi2_pvalue?: number | null;
  missing_rate?: number | null;
  missing_rate_ref?: number | null;
  drifted: boolean;
  reasons?: string[];
  /** "numeric" (binned PSI, KS, Wasserstein) or "category" (PSI and chi-square over its categories). */
  kind?: 'numeric' | 'category';
  /** Category features: share of present live values outside the reference's categories, and what the reference expects. */
  unseen_rate?: number | null;
  unseen_rate_ref?: number | null;
  /** Category features: reference vs live share of present values per category, top first; the last is "(other)". */
  top_categories?: CategoryShare[];
}

export interface CategoryShare {
  category: string;
  reference: number;
  live: number;
}

export interface MonitorAlert {
  rule: string;
  state: string; // ok | firing | resolved
  since: number | null;
  value: number | null;
  features: string[] | null;
  metric?: string;
  op?: string;
  threshold?: number;
  action?: string | null;
}

export interface MonitorEvent {
  id: number;
  deployment: string;
  rule: string;
  event: string; // fired | resolved
  at: number;
  metric?: string;
  value: number | null;
  threshold?: number | null;
  features?: string[] | null;
  action?: string | null;
  message?: string | null;
  model?: string | null;
  version?: string | null;
  handled_by?: string | null;
}

export interface MonitorQuality {
  metric?: string;
  status: string;
  n?: number;
  requests?: number;
  label_rate?: number | null;
  accuracy?: number | null;
  accuracy_lower?: number | null;
  accuracy_upper?: number | null;
  [key: string]: unknown;
}

export interface MonitorRequests {
  requests: number;
  errors: number;
  error_rate: number | null;
  latency_p50_ms?: number | null;
  latency_p90_ms?: number | null;
  latency_p95_ms?: number | null;
  latency_p99_ms?: number | null;
  [key: string]: unknown;
}

export interface MonitorSummary {
  status: string;
  deployment: string;
  model?: string;
  version?: string;
  at?: number;
  window?: string | null;
  window_rows?: number;
  logged_rows?: number;
  completed_windows?: number;
  settings?: MonitorSettings;
  drift?: {
    n_rows: number;
    min_rows: number;
    status: string;
    drifted: string[];
    features: FeatureDrift[];
  } | null;
  prediction_drift?: {
    task: string;
    status: string;
    n: number;
    psi: number | null;
    psi_band: string | null;
    drifted: boolean;
    [key: string]: unknown;
  } | null;
  quality?: MonitorQuality | null;
  requests?: MonitorRequests | null;
  alerts?: MonitorAlert[];
  events?: MonitorEvent[];
  notes?: string[];
  /** The shadow version's evidence beside the active version's; null when never shadowed. */
  shadow?: ShadowSummary | null;
  [key: string]: unknown;
}

/** Accuracy on labelled rows with its 95 % Wilson interval. */
export interface Accuracy {
  value: number;
  low: number;
  high: number;
  labels: number;
}

/** A shadow version (mirrored live traffic, its answers logged beside the active version's). */
export interface ShadowSummary {
  version: string;
  active_version: string | null;
  running: boolean;
  requests: number;
  rows: number;
  errors: number;
  /** Share of rows where both versions predict the same. */
  agreement_rate: number | null;
  active_accuracy: Accuracy | null;
  shadow_accuracy: Accuracy | null;
  dropped: number;
}

export interface QualityPoint {
  at: number;
  status: string;
  accuracy?: number | null;
  accuracy_lower?: number | null;
  accuracy_upper?: number | null;
  n?: number;
  [key: string]: unknown;
}

export interface RequestSeries {
  t: number[];
  rate: number[];
  error_rate: (number | null)[];
  errors_per_s: number[];
  p50_ms: (number | null)[];
  p95_ms: (number | null)[];
  p99_ms: (number | null)[];
  requests: number[];
  bucket_s: number | null;
}

export interface PredictionSeries {
  task: string | null;
  classes?: string[];
  edges?: number[];
  reference?: number[];
  live?: number[];
  unseen?: number;
  n?: number;
}

export interface MonitorSeries {
  deployment: string;
  model?: string;
  version?: string;
  start: number;
  end: number;
  task: string | null;
  requests: RequestSeries;
  quality: QualityPoint[];
  predictions: PredictionSeries;
}

export interface AlertsAnswer {
  alerts: MonitorAlert[];
  events: MonitorEvent[]; // newest first
}

/** A background `aidevops` command started from Lab (a pipeline run or a retraining); shared with the Runs panel. */
export interface Job {
  id: string;
  kind: string; // run | retrain
  argv: string[];
  started: number;
  finished: number | null;
  pid: number | null;
  status: string; // running | succeeded | failed
  exit_code: number | null;
  pipeline: string | null;
  deployment: string | null;
  run_id: string | null; // the pipeline run it produced, once it exists
  message: string;
}

/** GET jobs/{id}: the job, the last lines of its output and the run it produced (once it exists). */
export interface JobDetail extends Job {
  log_tail: string[];
  run: RunSummary | null;
}

// ---------------------------------------------------------------- end of Monitor types

const BASE = 'aidevops/api';

/** The REST API, one method per route. */
export class AidevopsApi {
  constructor(private readonly fetcher: Fetcher) {}

  async models(): Promise<RegisteredModel[]> {
    return (await this.request<{ models: RegisteredModel[] }>('models')).models;
  }

  async deployments(): Promise<Deployment[]> {
    return (await this.request<{ deployments: Deployment[] }>('deployments')).deployments;
  }

  deployment(name: string): Promise<Deployment> {
    return this.request<Deployment>(`deployments/${enc(name)}`);
  }

  deploy(request: DeployRequest): Promise<DeployResult> {
    return this.request<DeployResult>('deployments', 'POST', request);
  }

  promote(name: string, reason = ''): Promise<ChangeResult> {
    return this.request<ChangeResult>(`deployments/${enc(name)}/promote`, 'POST', { reason });
  }

  rollback(name: string, reason = ''): Promise<ChangeResult> {
    return this.request<ChangeResult>(`deployments/${enc(name)}/rollback`, 'POST', { reason });
  }

  canary(name: string, version: string, share: number, reason = ''): Promise<ChangeResult> {
    return this.request<ChangeResult>(`deployments/${enc(name)}/canary`, 'POST', { version, share, reason });
  }

  /** Switch to the retrained version that awaits approval and make it champion. */
  approve(name: string, reason = ''): Promise<ChangeResult> {
    return this.request<ChangeResult>(`deployments/${enc(name)}/approve`, 'POST', { reason });
  }

  /** Drop the retrained version that awaits approval; the deployment keeps serving its version. */
  reject(name: string, reason = ''): Promise<ChangeResult> {
    return this.request<ChangeResult>(`deployments/${enc(name)}/reject`, 'POST', { reason });
  }

  clearCanary(name: string, reason = ''): Promise<ChangeResult> {
    return this.request<ChangeResult>(`deployments/${enc(name)}/canary`, 'POST', { clear: true, reason });
  }

  async undeploy(name: string, reason = ''): Promise<HistoryEntry> {
    const query = reason ? `?reason=${encodeURIComponent(reason)}` : '';
    return (await this.request<{ event: HistoryEntry }>(`deployments/${enc(name)}${query}`, 'DELETE')).event;
  }

  async runs(limit = 20): Promise<RunSummary[]> {
    return (await this.request<{ runs: RunSummary[] }>(`runs?limit=${limit}`)).runs;
  }

  runNotebook(runId: string, step: string): Promise<Record<string, unknown>> {
    return this.request(`runs/${enc(runId)}/notebooks/${enc(step)}`);
  }

  // ---- Runs ----------------------------------------------------------------------------------------

  run(runId: string): Promise<RunSummary> {
    return this.request<RunSummary>(`runs/${enc(runId)}`);
  }

  /** Start a pipeline with param overrides; the job follows it. */
  async startRun(pipeline: string, params: Record<string, unknown> = {}): Promise<Job> {
    return (await this.request<{ job: Job }>('runs', 'POST', { pipeline, params })).job;
  }

  /**
   * Run a run's pipeline again (cached steps are reused); `params` replaces its overrides when given.
   * `fromStep`: that step and everything downstream of it run again even when cached (`aidevops run --from`).
   */
  async rerun(runId: string, params?: Record<string, unknown>, fromStep?: string): Promise<Job> {
    const body: { params?: Record<string, unknown>; from_step?: string } = {};
    if (params !== undefined) {
      body.params = params;
    }
    if (fromStep !== undefined) {
      body.from_step = fromStep;
    }
    return (await this.request<{ job: Job }>(`runs/${enc(runId)}/rerun`, 'POST', body)).job;
  }

  /** The workspace's schedules (404 from a server without them: the caller hides them). */
  async schedules(): Promise<Schedule[]> {
    return (await this.request<{ schedules: Schedule[] }>('schedules')).schedules;
  }

  async listJobs(limit = 20): Promise<Job[]> {
    return (await this.request<{ jobs: Job[] }>(`jobs?limit=${limit}`)).jobs;
  }

  // getJob(id) (GET jobs/{id}) is in the Monitor section below.

  diff(base: string, remote: string, step?: string): Promise<RunDiff> {
    const query =
      `base=${encodeURIComponent(base)}&remote=${encodeURIComponent(remote)}` +
      (step ? `&step=${encodeURIComponent(step)}` : '');
    return this.request<RunDiff>(`diff?${query}`);
  }

  // ---- end Runs ------------------------------------------------------------------------------------

  // ---------------------------------------------------------------- Monitor (Monitor panel)

  /** The server's latest monitor pass (409 while the deployment is not running); `refresh` computes one now. */
  monitor(name: string, refresh = false): Promise<MonitorSummary> {
    return this.request<MonitorSummary>(`deployments/${enc(name)}/monitor${refresh ? '?refresh=1' : ''}`);
  }

  /** Chart series: request rate, latency, errors per time bucket; live quality points; prediction shares. */
  series(name: string, minutes = 60, buckets = 60): Promise<MonitorSeries> {
    return this.request<MonitorSeries>(`deployments/${enc(name)}/series?minutes=${minutes}&buckets=${buckets}`);
  }

  /** Alert states and events (newest first); answers while the deployment is stopped too. */
  alerts(name: string): Promise<AlertsAnswer> {
    return this.request<AlertsAnswer>(`deployments/${enc(name)}/alerts`);
  }

  /** Start a retraining of the deployment's model (a background job). */
  async retrain(name: string, reason = ''): Promise<Job> {
    return (await this.request<{ job: Job }>(`deployments/${enc(name)}/retrain`, 'POST', reason ? { reason } : {})).job;
  }

  /** One background job with its log tail and the run it produced (used by the Runs panel too). */
  getJob(id: string): Promise<JobDetail> {
    return this.request<JobDetail>(`jobs/${enc(id)}`);
  }

  // ---------------------------------------------------------------- end of Monitor methods

  /** One call: JSON in and out; a non-2xx answer becomes an ApiError carrying the server's sentence. */
  private async request<T>(path: string, method = 'GET', body?: unknown): Promise<T> {
    const init: RequestInit = { method };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers = { 'Content-Type': 'application/json' };
    }
    let response: Response;
    try {
      response = await this.fetcher(`${BASE}/${path}`, init);
    } catch (reason) {
      throw new ApiError(
        `The Jupyter server did not answer (${String(
          (reason as Error)?.message ?? reason
        )}); check that it is still running.`,
        0
      );
    }
    const text = await response.text();
    let data: unknown = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!response.ok) {
      const said = (data ?? {}) as { error?: unknown; message?: unknown };
      const message =
        said.error ||
        said.message ||
        `The server answered ${response.status} ${response.statusText || ''}`.trim() +
          ' to ' +
          `${method} /${BASE}/${path}.`;
      throw new ApiError(String(message), response.status);
    }
    return data as T;
  }
}

function enc(part: string): string {
  return encodeURIComponent(part);
}
