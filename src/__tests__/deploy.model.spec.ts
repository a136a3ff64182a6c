import { AidevopsApi } from '../common/api';
import { DeployModel } from '../deploy/model';
import { fakeFetcher, Route } from './fake';
import { expectPollsOnlyWhileVisible, expectRefusedRefresh, useFakeClock } from './support';

function setup(extra: Record<string, Route> = {}) {
  let deployments: unknown[] = [];
  const routes: Record<string, Route> = {
    'GET aidevops/api/models': () => ({ status: 200, body: { models: [{ name: 'm', aliases: {}, versions: [] }] } }),
    'GET aidevops/api/deployments': () => ({ status: 200, body: { deployments } }),
    ...extra
  };
  const { fetcher, calls } = fakeFetcher(routes);
  const model = new DeployModel(new AidevopsApi(fetcher), 20);
  return { model, calls, setDeployments: (d: unknown[]) => (deployments = d) };
}

const reads = (calls: { path: string }[]) => calls.filter(c => c.path === 'aidevops/api/deployments').length;

describe('DeployModel', () => {
  useFakeClock();

  it('polls once per interval only while visible, and refreshes at once when shown again', async () => {
    await expectPollsOnlyWhileVisible(setup(), reads, model => expect(model.loaded).toBe(true)); // interval: 20 ms
  });

  it('emits changed with the fetched state', async () => {
    const { model, setDeployments } = setup();
    setDeployments([{ name: 'd', state: 'running' }]);
    let emitted = 0;
    model.changed.connect(() => emitted++);
    await model.refresh();
    expect(emitted).toBeGreaterThan(0);
    expect(model.view.models.map(m => m.name)).toEqual(['m']);
    expect(model.view.deployments.map(d => d.name)).toEqual(['d']);
    model.dispose();
  });

  it('shows progress during an action, keeps its error after the refresh, and clears it on success', async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>(resolve => (release = resolve));
    let fail = true;
    const { model } = setup({
      'POST aidevops/api/deployments/d/rollback': async () => {
        await gate;
        return fail
          ? { status: 409, body: { error: "Deployment 'd' has no previous version to roll back to." } }
          : { status: 200, body: { event: {}, deployment: {} } };
      }
    });
    const done = model.rollback('d');
    expect(model.busy).toBe('Rolling back d…');
    expect(await model.promote('d')).toBe(false); // one change at a time
    expect(model.error).toMatch(/Wait until "Rolling back d…" has finished/);
    release();
    expect(await done).toBe(false);
    expect(model.busy).toBeNull();
    expect(model.error).toBe("Deployment 'd' has no previous version to roll back to.");
    fail = false;
    expect(await model.rollback('d')).toBe(true);
    expect(model.error).toBeNull();
    model.dispose();
  });

  it('reports a failing refresh in words', () =>
    expectRefusedRefresh(setup, 'models', 'MLflow tracking server at http://x is unreachable: start it.'));
});
