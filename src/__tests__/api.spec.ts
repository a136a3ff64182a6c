import { AidevopsApi, ApiError } from '../common/api';
import { fakeFetcher } from './fake';

describe('AidevopsApi', () => {
  it('unwraps lists and builds paths under aidevops/api with encoded names', async () => {
    const { fetcher, calls } = fakeFetcher({
      'GET aidevops/api/models': () => ({ status: 200, body: { models: [{ name: 'm', versions: [] }] } }),
      'GET aidevops/api/deployments/a%2Fb': () => ({ status: 200, body: { name: 'a/b' } })
    });
    const api = new AidevopsApi(fetcher);
    expect(await api.models()).toEqual([{ name: 'm', versions: [] }]);
    expect((await api.deployment('a/b')).name).toBe('a/b');
    expect(calls.map(c => c.path)).toEqual(['aidevops/api/models', 'aidevops/api/deployments/a%2Fb']);
  });

  it('sends state changes as POST/DELETE with JSON bodies', async () => {
    const { fetcher, calls } = fakeFetcher({
      'POST aidevops/api/deployments': () => ({ status: 201, body: { action: 'started' } }),
      'POST aidevops/api/deployments/d/canary': () => ({ status: 200, body: { event: {} } }),
      'POST aidevops/api/deployments/d/rollback': () => ({ status: 200, body: { event: {} } }),
      'DELETE aidevops/api/deployments/d': () => ({ status: 200, body: { event: { operation: 'undeploy' } } })
    });
    const api = new AidevopsApi(fetcher);
    expect((await api.deploy({ model: 'm', alias: 'champion' })).action).toBe('started');
    await api.canary('d', '2', 0.25);
    await api.clearCanary('d');
    await api.rollback('d', 'bad metrics');
    expect((await api.undeploy('d', 'done')).operation).toBe('undeploy');
    expect(calls.map(c => `${c.method} ${c.path}`)).toEqual([
      'POST aidevops/api/deployments',
      'POST aidevops/api/deployments/d/canary',
      'POST aidevops/api/deployments/d/canary',
      'POST aidevops/api/deployments/d/rollback',
      'DELETE aidevops/api/deployments/d?reason=done'
    ]);
    expect(calls[0].body).toEqual({ model: 'm', alias: 'champion' });
    expect(calls[1].body).toEqual({ version: '2', share: 0.25, reason: '' });
    expect(calls[2].body).toEqual({ clear: true, reason: '' });
    expect(calls[3].body).toEqual({ reason: 'bad metrics' });
  });

  it("turns a 4xx into an ApiError carrying the server's sentence and status", async () => {
    const { fetcher } = fakeFetcher({
      'POST aidevops/api/deployments/d/promote': () => ({
        status: 409,
        body: { error: "Deployment 'd' is stopped, not running." }
      })
    });
    const api = new AidevopsApi(fetcher);
    await expect(api.promote('d')).rejects.toEqual(new ApiError("Deployment 'd' is stopped, not running.", 409));
    await expect(api.promote('d')).rejects.toHaveProperty('status', 409);
  });

  it('explains a non-JSON error and a dead server in words', async () => {
    const api = new AidevopsApi(
      async () => new Response('<html>oops</html>', { status: 502, statusText: 'Bad Gateway' })
    );
    await expect(api.models()).rejects.toThrow('The server answered 502 Bad Gateway to GET /aidevops/api/models.');
    const dead = new AidevopsApi(async () => {
      throw new TypeError('Failed to fetch');
    });
    const error = await dead.deployments().catch(e => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(error.status).toBe(0);
    expect(error.message).toMatch(/did not answer \(Failed to fetch\)/);
  });
});
