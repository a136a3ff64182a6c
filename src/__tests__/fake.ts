/** A fetcher that answers from a table of routes and records every call (method, path, body). */

import { Fetcher } from '../api';

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
      return new Response(JSON.stringify({ error: `no route ${call.method} ${path}` }), { status: 404 });
    }
    const answer = await route(call);
    return new Response(answer.body === undefined ? '' : JSON.stringify(answer.body), { status: answer.status });
  };
  return { fetcher, calls };
}
