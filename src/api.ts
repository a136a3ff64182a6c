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
  metrics: Record<string, number>;
  lineage: Lineage;
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
  steps: Record<string, { status: string | null; error: string | null }>;
  notebooks: RunNotebook[];
}

const BASE = 'aidevops/api';

/** The REST API, one method per route. */
export class AidevopsApi {
  constructor(private readonly fetcher: Fetcher) {}

  async models(): Promise<RegisteredModel[]> {
    return (await this.request<{ models: RegisteredModel[] }>('models')).models;
  }

  async deployments(): Promise<Deployment[]> {
    return (await this.request<{ deployments: Deployment[] }>('deployments'))
      .deployments;
  }

  deployment(name: string): Promise<Deployment> {
    return this.request<Deployment>(`deployments/${enc(name)}`);
  }

  deploy(request: DeployRequest): Promise<DeployResult> {
    return this.request<DeployResult>('deployments', 'POST', request);
  }

  promote(name: string, reason = ''): Promise<ChangeResult> {
    return this.request<ChangeResult>(
      `deployments/${enc(name)}/promote`,
      'POST',
      { reason }
    );
  }

  rollback(name: string, reason = ''): Promise<ChangeResult> {
    return this.request<ChangeResult>(
      `deployments/${enc(name)}/rollback`,
      'POST',
      { reason }
    );
  }

  canary(
    name: string,
    version: string,
    share: number,
    reason = ''
  ): Promise<ChangeResult> {
    return this.request<ChangeResult>(
      `deployments/${enc(name)}/canary`,
      'POST',
      { version, share, reason }
    );
  }

  clearCanary(name: string, reason = ''): Promise<ChangeResult> {
    return this.request<ChangeResult>(
      `deployments/${enc(name)}/canary`,
      'POST',
      { clear: true, reason }
    );
  }

  async undeploy(name: string, reason = ''): Promise<HistoryEntry> {
    const query = reason ? `?reason=${encodeURIComponent(reason)}` : '';
    return (
      await this.request<{ event: HistoryEntry }>(
        `deployments/${enc(name)}${query}`,
        'DELETE'
      )
    ).event;
  }

  async runs(limit = 20): Promise<RunSummary[]> {
    return (await this.request<{ runs: RunSummary[] }>(`runs?limit=${limit}`))
      .runs;
  }

  runNotebook(runId: string, step: string): Promise<Record<string, any>> {
    return this.request(`runs/${enc(runId)}/notebooks/${enc(step)}`);
  }

  /** One call: JSON in and out; a non-2xx answer becomes an ApiError carrying the server's sentence. */
  private async request<T>(
    path: string,
    method = 'GET',
    body?: unknown
  ): Promise<T> {
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
    let data: any = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!response.ok) {
      const message =
        (data && (data.error || data.message)) ||
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
