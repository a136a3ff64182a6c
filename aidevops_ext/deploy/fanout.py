"""`aidevops deploy NAME --workers N`: one deployment served by N worker processes that serve the same slots.

With N > 1 the deployment's server process (child.py) supervises its workers instead of serving:
- it keeps the listening socket the deployment's supervisor handed it and runs N workers on it
  (serving/server.py's `serve_workers`: a dead worker, kill -9 included, is started again);
- every worker also listens on a private 127.0.0.1 port of its own. An admin call (the manager's, on the
  deployment's address with its token, as with one worker) reaches whichever worker accepted it; that worker
  passes it on to this process's admin endpoint (127.0.0.1, an ephemeral port), which applies it to every
  worker through their private ports, and answers once all have it. The first worker's answer decides: a
  refusal there changed nothing anywhere and is the answer; otherwise all the others apply it at once, and
  one that fails what the first applied is stopped and started again, so it comes back serving what the
  others serve;
- it remembers the slots the workers serve (the versions of active, previous, canary and shadow, and the
  canary's share) and starts every worker, a restarted one included, with them; an operation waits while a
  worker is starting, so none misses one;
- it alone follows the deployment's registry alias (`watch.AliasFollower`) and switches through the same
  fan-out; the workers never poll the registry.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
import socket
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio
import orjson

from ..errors import AidevopsError
from ..workspace import Workspace

log = logging.getLogger("aidevops.deploy")

MAX_ADMIN_BODY = 1 << 20  # admin bodies are a URI, a share and a reason
WORKER_CALL_SECONDS = 300.0  # one worker loading and smoke-testing a version from the registry
STARTING_WAIT_SECONDS = 180.0  # how long an operation waits for a starting worker before it is refused
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback calls never use a proxy


def serve_deployment(ws: Workspace, name: str, sock: socket.socket, workers: int, log_level: str) -> None:
    """Run deployment `name` as `workers` processes on `sock` until SIGTERM, every admin call reaching all."""
    from ..serving.config import ServingConfig  # noqa: PLC0415
    from ..serving.server import serve_workers  # noqa: PLC0415
    from .store import DeployStore  # noqa: PLC0415

    dep = DeployStore(ws).get(name)
    if dep is None:
        raise AidevopsError(f"Deployment '{name}' is not in {ws.deploy_db}; deploy it with `aidevops deploy`.")
    fanout = FanOut(ws, name, ServingConfig.from_env().admin_token or "")
    endpoint = ThreadingHTTPServer(("127.0.0.1", 0), _AdminHandler)
    endpoint.daemon_threads = True
    endpoint.fanout = fanout  # type: ignore[attr-defined]
    fanout.port = endpoint.server_address[1]
    threading.Thread(target=endpoint.serve_forever, name="aidevops-admin-fanout", daemon=True).start()
    config = ServingConfig.from_env(follow_alias_seconds=float(dep.follow or 0.0))
    if dep.alias and config.follow_alias_seconds > 0:
        fanout.follow_alias(dep, config.follow_alias_seconds)
    log.warning("serving deployment %r with %d workers (admin fan-out on 127.0.0.1:%s)", name, workers, fanout.port)
    try:
        serve_workers(
            sock, workers, log_level, fanout.app_maker, admin_ports=True, on_ready=fanout.ready, on_exit=fanout.exited
        )
    finally:
        endpoint.shutdown()
        endpoint.server_close()


class FanOut:
    """The workers' private admin ports, the slots they serve, and admin operations applied to all of them."""

    def __init__(self, ws: Workspace, name: str, token: str) -> None:
        self.ws, self.name, self.token = ws, name, token
        self.port = 0  # this process's admin endpoint, where the workers pass admin calls on
        self.cond = threading.Condition()
        self.serving: dict[int, tuple[int, int]] = {}  # worker index -> (pid, private admin port)
        self.starting: set[int] = set()
        self.slots_state: dict[str, Any] | None = None  # None: the versions of the deployment's row

    # ------------------------------------------------------------------ serve_workers' hooks
    def app_maker(self, index: int) -> Any:
        """What worker `index` builds its app with: the slots the others serve now."""
        with self.cond:  # not in the middle of an operation: the new worker gets its outcome
            self.starting.add(index)
            state = None if self.slots_state is None else dict(self.slots_state)
        return functools.partial(build_worker, str(self.ws.root), self.name, self.port, state)

    def ready(self, index: int, pid: int, admin_port: int | None) -> None:
        with self.cond:
            self.starting.discard(index)
            if admin_port is not None:
                self.serving[index] = (pid, admin_port)
            self.cond.notify_all()

    def exited(self, index: int) -> None:
        with self.cond:
            self.serving.pop(index, None)
            self.starting.discard(index)
            self.cond.notify_all()

    # ------------------------------------------------------------------ admin calls
    def call(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        """(status, JSON body) of one admin call: a read from one worker, a change applied to every worker."""
        if method == "GET":
            with self.cond:
                targets = sorted(self.serving.items())[:1]
            if not targets:
                return _error(503, f"No worker of '{self.name}' is serving yet; try again in a moment.")
            return _worker_call(targets[0][1][1], method=method, path=path, headers=headers, body=body)
        with self.cond:
            if not self.cond.wait_for(lambda: not self.starting and self.serving, STARTING_WAIT_SECONDS):
                return _error(503, f"A worker of '{self.name}' is still starting; try the operation again.")
            return self._apply(method, path, headers, body)

    def _apply(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        """The first serving worker decides; then all the others at once (the lock held: no worker starts
        meanwhile, and one that fails what the first applied is started again with the outcome)."""
        pending = sorted(self.serving.items())
        call = functools.partial(_worker_call, method=method, path=path, headers=headers, body=body)
        while pending:
            index, (pid, port) = pending.pop(0)
            try:
                decided = call(port)
            except OSError as exc:  # it died: it comes back with the outcome, which app_maker hands it
                log.warning("worker %d did not answer %s (%s); it is started again", index, path, exc)
                _restart(pid)
                continue
            if decided[0] != 200:
                return decided  # refused by the first worker: nothing changed anywhere
            self.slots_state = _versions(orjson.loads(decided[1]).get("slots") or {})
            break
        else:
            return _error(503, f"No worker of '{self.name}' answered {path}; see the deployment's log.")

        def follow(worker: tuple[int, tuple[int, int]]) -> None:
            index, (pid, port) = worker
            try:
                status: int | str = call(port)[0]
            except OSError as exc:  # it died meanwhile
                status = f"nothing ({exc})"
            if status != 200:
                log.warning(
                    "worker %d answered %s to %s, which the others applied; it is started again", index, status, path
                )
                _restart(pid)

        if pending:
            with ThreadPoolExecutor(max_workers=len(pending), thread_name_prefix="aidevops-fanout") as pool:
                list(pool.map(follow, pending))
        return decided

    # ------------------------------------------------------------------ the alias
    def active_version(self, dep: Any) -> str | None:
        return self.slots_state["active"] if self.slots_state is not None else dep.active_version

    def follow_alias(self, dep: Any, seconds: float) -> None:
        """Poll the deployment's alias in this process; a move switches every worker (watch.AliasFollower)."""
        from ..serving.loader import ModelRef  # noqa: PLC0415
        from ..serving.watch import AliasFollower  # noqa: PLC0415

        ref = ModelRef(f"models:/{dep.model}@{dep.alias}", name=dep.model, alias=dep.alias)
        follower = AliasFollower(ref, self.ws, seconds, seen_version=dep.alias_version or dep.active_version)
        slots = _AllWorkersSlots(self, dep)
        threading.Thread(target=asyncio.run, args=(follower.run(slots),), name="aidevops-follow", daemon=True).start()


class _AllWorkersSlots:
    """The slots AliasFollower drives (watch.FollowedSlots), applied to every worker."""

    def __init__(self, fanout: FanOut, dep: Any) -> None:
        self.fanout, self.dep = fanout, dep

    @property
    def active(self) -> Any:
        return SimpleNamespace(version=self.fanout.active_version(self.dep))

    def switch(self, source: Any, *, actor: str | None = None, reason: str = "") -> None:
        uri = str(source)
        from ..serving.errors import ModelRefused  # noqa: PLC0415

        body = orjson.dumps({"model_uri": uri, "actor": actor, "reason": reason})
        headers = {"authorization": f"Bearer {self.fanout.token}"}
        status, answer = self.fanout.call("POST", "/admin/switch", headers, body)
        if status == 422:
            raise ModelRefused(orjson.loads(answer).get("error") or f"{uri} was refused")
        if status != 200:
            raise AidevopsError(f"The workers answered {status} to the alias switch to {uri}: {answer[:300]!r}")


def _versions(slots: dict) -> dict[str, Any]:
    """The versions a worker's /admin answer says it serves: what a worker starting later is built with."""

    def version(slot: str) -> str | None:
        return (slots.get(slot) or {}).get("version")

    return {
        "active": version("active"),
        "previous": version("previous"),
        "canary": version("canary"),
        "canary_share": float(slots.get("canary_share") or 0.0),
        "shadow": version("shadow"),
    }


def _restart(pid: int) -> None:
    """SIGTERM a worker (it finishes its requests); serve_workers starts it again with the current slots."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass


def _error(status: int, message: str) -> tuple[int, bytes]:
    return status, orjson.dumps({"error": message})


def _worker_call(port: int, *, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
    """(status, body) of one HTTP call on 127.0.0.1:port; OSError when nothing answers."""
    return _http(f"http://127.0.0.1:{port}{path}", method, headers, body, WORKER_CALL_SECONDS)


def _http(url: str, method: str, headers: dict[str, str], body: bytes, timeout: float) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body if method != "GET" else None, method=method)
    for key in ("authorization", "host", "content-type"):
        if headers.get(key):
            req.add_header(key.capitalize(), headers[key])
    try:
        with _opener.open(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except urllib.error.URLError as exc:
        raise OSError(str(exc.reason)) from None


class _AdminHandler(BaseHTTPRequestHandler):
    """This process's admin endpoint: what a worker passes on, applied through FanOut."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's names
        self._handle()

    def do_POST(self) -> None:  # noqa: N802
        self._handle()

    def _handle(self) -> None:
        fanout: FanOut = self.server.fanout  # type: ignore[attr-defined]
        length = int(self.headers.get("content-length") or 0)
        if not self.path.startswith("/admin/"):
            status, answer = _error(404, "Only /admin/ calls are passed to every worker.")
        elif length > MAX_ADMIN_BODY:
            status, answer = _error(413, f"An admin body is at most {MAX_ADMIN_BODY} bytes.")
        else:
            headers = {key.lower(): value for key, value in self.headers.items()}
            body = self.rfile.read(length) if length else b""
            try:
                status, answer = fanout.call(self.command, self.path, headers, body)
            except OSError as exc:
                status, answer = _error(503, f"The worker serving reads did not answer ({exc}); try again.")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        log.debug("admin fan-out: " + format, *args)


# ---------------------------------------------------------------------- in each worker


def build_worker(
    root: str, name: str, fanout_port: int, slots_state: dict | None, index: int, metrics_dir: Path, admin_port: int
) -> Any:
    """The app of worker `index`: the deployment's slots (as the other workers serve them), every worker's
    metrics on /metrics, and admin calls on the shared port passed on to the fan-out."""
    from ..serving.server import merge_worker_metrics  # noqa: PLC0415
    from .child import build_app  # noqa: PLC0415

    app = build_app(Workspace(Path(root)), name, slots_state=slots_state, primary=index == 0, follow=False)
    merge_worker_metrics(app, metrics_dir, index)
    return AdminToAllWorkers(app, admin_port, fanout_port)


class AdminToAllWorkers:
    """ASGI wrapper of a worker's app: /admin/ calls that arrive on the shared port go to the fan-out (which
    comes back on this worker's private port, where the app answers them itself)."""

    def __init__(self, app: Any, private_port: int, fanout_port: int) -> None:
        self.app, self.private_port, self.fanout_port = app, private_port, fanout_port
        self.state = app.state

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        server = scope.get("server") or (None, None)
        if scope["type"] != "http" or not scope["path"].startswith("/admin/") or server[1] == self.private_port:
            await self.app(scope, receive, send)
            return
        body, more = b"", True
        while more and len(body) <= MAX_ADMIN_BODY:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        if len(body) > MAX_ADMIN_BODY:
            status, answer = _error(413, f"An admin body is at most {MAX_ADMIN_BODY} bytes.")
        else:
            url = f"http://127.0.0.1:{self.fanout_port}{scope['path']}"
            call = functools.partial(_http, url, scope["method"], headers, body, 2 * WORKER_CALL_SECONDS)
            try:
                status, answer = await anyio.to_thread.run_sync(call)
            except OSError as exc:
                status, answer = _error(503, f"The deployment's worker supervisor did not answer ({exc}).")
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": answer})
