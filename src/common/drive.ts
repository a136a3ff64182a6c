/**
 * A read-only contents drive over the executed notebooks of pipeline runs.
 *
 * Paths look like `aidevops-runs:<run id>/<step>/<notebook>.ipynb`. Executed notebooks live under the
 * workspace's hidden `.aidevops/runs/`, which Jupyter's file contents API refuses (hidden files) and which
 * may lie outside the server's root; this drive reads them through /aidevops/api/runs/ instead, and
 * refuses every write: an executed notebook is the record of a run.
 */

import { Contents, ServerConnection } from '@jupyterlab/services';
import { ISignal, Signal } from '@lumino/signaling';

import { AidevopsApi } from './api';

export const RUNS_DRIVE = 'aidevops-runs';

/** The drive path that opens a run step's executed notebook. */
export function notebookPath(runId: string, step: string, name: string): string {
  return `${RUNS_DRIVE}:${runId}/${step}/${name}`;
}

const READ_ONLY =
  'Executed notebooks of pipeline runs are read-only records; use "Save As…" or copy the notebook to change it.';

export class RunsDrive implements Contents.IDrive {
  constructor(
    private readonly api: AidevopsApi,
    readonly serverSettings: ServerConnection.ISettings
  ) {}

  readonly name = RUNS_DRIVE;

  get fileChanged(): ISignal<Contents.IDrive, Contents.IChangedArgs> {
    return this._fileChanged;
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  dispose(): void {
    this._isDisposed = true;
    Signal.clearData(this);
  }

  async get(localPath: string): Promise<Contents.IModel> {
    const parts = localPath.replace(/^\/+/, '').split('/');
    if (parts.length !== 3) {
      throw new Error(`${localPath} is not a run notebook (expected RUN/STEP/NAME.ipynb).`);
    }
    const model = await this.api.runNotebook(parts[0], parts[1]);
    return { ...model, path: localPath } as Contents.IModel;
  }

  async getDownloadUrl(localPath: string): Promise<string> {
    const parts = localPath.split('/');
    return `${this.serverSettings.baseUrl}aidevops/api/runs/${encodeURIComponent(parts[0])}/notebooks/${encodeURIComponent(parts[1])}?download=1`;
  }

  async newUntitled(): Promise<Contents.IModel> {
    throw new Error(READ_ONLY);
  }

  async delete(): Promise<void> {
    throw new Error(READ_ONLY);
  }

  async rename(): Promise<Contents.IModel> {
    throw new Error(READ_ONLY);
  }

  async save(): Promise<Contents.IModel> {
    throw new Error(READ_ONLY);
  }

  async copy(): Promise<Contents.IModel> {
    throw new Error(READ_ONLY);
  }

  async createCheckpoint(): Promise<Contents.ICheckpointModel> {
    throw new Error(READ_ONLY);
  }

  async listCheckpoints(): Promise<Contents.ICheckpointModel[]> {
    return [];
  }

  async restoreCheckpoint(): Promise<void> {
    throw new Error(READ_ONLY);
  }

  async deleteCheckpoint(): Promise<void> {
    throw new Error(READ_ONLY);
  }

  private _fileChanged = new Signal<Contents.IDrive, Contents.IChangedArgs>(this);
  private _isDisposed = false;
}
