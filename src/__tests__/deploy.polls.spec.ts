/**
 * @jest-environment jsdom
 *
 * The Deploy panel across polls, as in Chromium: the model polls (fake fetcher, jest's fake clock) and
 * each change re-renders the React view with the model's state, as the panel's UseSignal does.
 */

import * as React from 'react';

import { AidevopsApi } from '../common/api';
import { IActions } from '../deploy/components';
import { DeployView } from '../deploy/view';
import { DeployModel, POLL_INTERVAL_MS } from '../deploy/model';
import { deploymentAnswer, historyEntry } from './apifixtures';
import { fakeFetcher } from './fake';
import { mount } from './reactdom';
import { useFakeClock } from './support';

const noop: IActions = {
  deploy: () => undefined,
  canary: () => undefined,
  promote: () => undefined,
  clearCanary: () => undefined,
  rollback: () => undefined,
  undeploy: () => undefined,
  approve: () => undefined,
  reject: () => undefined,
  openNotebook: () => undefined,
  refresh: () => undefined
};

/** A running deployment whose restart count and history grow on every read, so every poll changes the DOM. */
function setup() {
  let reads = 0;
  const deployment = () =>
    deploymentAnswer({
      restarts: reads,
      example: { body: {}, curl: "curl -X POST http://127.0.0.1:5000/invocations -d '{}'" },
      history: Array.from({ length: reads }, (_, i) =>
        historyEntry({ when: `2026-11-23T10:00:0${i}+0000`, ts: i, reason: `poll ${i}` })
      )
    });
  const { fetcher } = fakeFetcher({
    'GET aidevops/api/models': () => ({ status: 200, body: { models: [] } }),
    'GET aidevops/api/deployments': () => {
      reads += 1;
      return { status: 200, body: { deployments: [deployment()] } };
    }
  });
  const model = new DeployModel(new AidevopsApi(fetcher));
  const view = mount();
  const show = () => view.render(React.createElement(DeployView, { state: model.view, actions: noop }));
  show();
  model.changed.connect(show);
  return { model, node: view.node, reads: () => reads };
}

describe('the Deploy panel across polls', () => {
  useFakeClock();

  it('keeps an opened "Try it" open and a closed History closed while polls redraw the card', async () => {
    const { model, node, reads } = setup();
    model.visible = true;
    await jest.advanceTimersByTimeAsync(0);
    const tryIt = () => node.querySelector('details.jp-aidevops-example') as HTMLDetailsElement;
    const history = () => node.querySelector('details.jp-aidevops-history-box') as HTMLDetailsElement;
    expect(tryIt().open).toBe(false);
    expect(history().open).toBe(true); // History starts open
    tryIt().open = true;
    history().open = false;

    await jest.advanceTimersByTimeAsync(3 * POLL_INTERVAL_MS); // past the 8 s after which Chromium showed it closed

    expect(reads()).toBe(4);
    expect(node.querySelectorAll('.jp-aidevops-history-row')).toHaveLength(4); // the card shows each poll's answer
    expect(node.querySelector('.jp-aidevops-history-box summary')!.textContent).toBe('History (4)');
    expect(tryIt().open).toBe(true);
    expect(history().open).toBe(false);
    model.dispose();
  });
});
