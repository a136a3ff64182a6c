/**
 * The aidevops JupyterLab extension: the shared REST client (common/token), the Deploy panel (deploy/),
 * the Runs panel (runs/) and the Monitor panel (monitor/).
 */

import { apiPlugin } from './common/token';
import { deployPlugin } from './deploy/plugin';
import { monitorPlugin } from './monitor/plugin';
import { runsPlugin } from './runs/plugin';

export default [apiPlugin, deployPlugin, runsPlugin, monitorPlugin];
