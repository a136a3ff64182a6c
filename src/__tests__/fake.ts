/** A fetcher that answers from a table of routes and records every call (method, path, body). */

import { Fetcher } from '../common/api';

export interface ICall {
  method: string;
  path: string;
  body: any;
}

export type Route = (call: ICall) => { status: number; body?: unknown } | Promise<{ status: number; body?: unknown }>;

export function fakeFetcher(routes: Record<string, Route>): { fetcher: Fetcher; calls: ICall[] } {
  const calls: ICall[] = [];
  const fetcher: Fetcher = async (path, init) => {
    const call = { method: init.method ?? 'GET', path, body: init.body ? JSON.parse(String(init.body)) : undefined };
    calls.push(call);
    const route = routes[`${call.method} ${path.split('?')[0]}`];
    if (!route) {
      return answer(404, JSON.stringify({ error: `no route ${call.method} ${path}` }));
    }
    const reply = await route(call);
    return answer(reply.status, reply.body === undefined ? '' : JSON.stringify(reply.body));
  };
  return { fetcher, calls };
}

/**
 * The part of a fetch Response the client reads (ok, status, statusText, text). Built by hand because
 * jest's jsdom environment, where the panel specs run, has no global Response.
 */
function answer(status: number, text: string): Response {
  return { ok: status >= 200 && status < 300, status, statusText: '', text: async () => text } as unknown as Response;
}

/** A route that refuses with HTTP `status` and the server's one-sentence `error`. */
export function refusal(status: number, error: string): Route {
  return () => ({ status, body: { error } });
}
