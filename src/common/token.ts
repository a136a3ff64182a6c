/**
 * One AidevopsApi for the whole extension, provided through a plugin token: the Deploy, Runs and Monitor
 * plugins require it instead of each building its own client on ServerConnection.
 */

import type { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { Token } from '@lumino/coreutils';

import { AidevopsApi, Fetcher } from './api';

export const IAidevopsApi = new Token<AidevopsApi>(
  'aidevops-ext:IAidevopsApi',
  'The typed client of the aidevops REST API (/aidevops/api/).'
);

/** A Fetcher on the Jupyter server's connection settings (base URL, token, XSRF header). */
export function serverFetcher(settings: ServerConnection.ISettings = ServerConnection.makeSettings()): Fetcher {
  return (path, init) => ServerConnection.makeRequest(URLExt.join(settings.baseUrl, path), init, settings);
}

export const apiPlugin: JupyterFrontEndPlugin<AidevopsApi> = {
  id: 'aidevops-ext:api',
  description: 'Provides the aidevops REST API client shared by the Deploy, Runs and Monitor panels.',
  autoStart: true,
  provides: IAidevopsApi,
  activate: (_app: JupyterFrontEnd) => new AidevopsApi(serverFetcher())
};
