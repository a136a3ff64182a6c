"""Running the server: `serve(model_uri, host, port)` loads and smoke-tests the model, then runs uvicorn
(uvloop, httptools, no access log) on a socket bound before the model loads, so a port in use fails at once
with one sentence.

With `workers=N` (N > 1) this process binds the socket and starts N worker processes that accept on it, each
loading the model itself; a worker that dies (kill -9 included) is started again while the others keep
serving. Every worker logs to the one deploy.db (WAL; rollups are folded inside each batch's write
transaction, so concurrent writers add up); only worker 0 runs the periodic monitor pass and the request
log's compactor; /metrics, whichever worker answers, shows them all (workermetrics.py). Worker 0 starts
first, the others once it serves. The admin API and gRPC change or serve one process's state, so `serve` needs
one worker for them; `deploy --workers N` passes each admin call to every worker (deploy/fanout.py).
"""

from __future__ import annotations

import errno
import functools
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..names import is_valid_name
from ..tokens import ensure_feedback_token
from ..workspace import Workspace
from .config import ServingConfig
from .loader import parse_uri
from .priority import favour_the_event_loop

log = logging.getLogger("aidevops.serving")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
WORKER_RESTART_WINDOW = 60.0
WORKER_MAX_RESTARTS = 5  # deaths of workers within the window before the server gives up


def default_workers() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket on host:port; ConfigError naming the port when it is taken or not allowed."""
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise ConfigError(f"Port {port!r} is not a valid TCP port; pick one between 1 and 65535.")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        raise ConfigError(f"Host {host!r} cannot be resolved; pass an address such as 127.0.0.1.") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"Port {port} on {host} is already in use; stop what is listening there or choose another port with --port."
            ) from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise ConfigError(
                f"Port {port} on {host} needs privileges this user lacks; choose a port above 1023."
            ) from None
        raise ConfigError(f"Cannot listen on {host}:{port} ({exc.strerror}); choose another host or port.") from None
    sock.set_inheritable(True)
    return sock


def check_grpc_port(host: str, grpc_port: int, http_port: int | None = None) -> None:
    """ConfigError (one sentence) unless host:grpc_port is a free port other than the HTTP one; checked before
    the model loads, since the gRPC server itself binds only when the app starts."""
    if isinstance(grpc_port, bool) or not isinstance(grpc_port, int) or not 1 <= grpc_port <= 65535:
        raise ConfigError(f"gRPC port {grpc_port!r} is not a valid TCP port; give --grpc-port between 1 and 65535.")
    if grpc_port == http_port:
        raise ConfigError(f"Port {grpc_port} is the HTTP port; give --grpc-port a port of its own.")
    try:
        bind_socket(host, grpc_port).close()
    except ConfigError:
        raise ConfigError(
            f"gRPC port {grpc_port} on {host} is in use or not allowed; stop what listens there or choose another "
            "with --grpc-port."
        ) from None


def check_workers(workers: Any, grpc_port: int | None = None) -> None:
    """ConfigError (one sentence) unless `workers` is a whole number of processes that fits the other options."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"--workers {workers!r} is not a number of processes; give a whole number of 1 or more.")
    if workers > 1 and grpc_port is not None:
        raise ConfigError("--grpc-port is served by one process; give --workers 1 with it.")


def run_uvicorn(app: Any, sockets: list[socket.socket], log_level: str, graceful_seconds: int = 10) -> None:
    """Serve `app` on already-listening sockets until SIGTERM/SIGINT: uvloop, httptools, no access log."""
    import uvicorn  # noqa: PLC0415

    config = uvicorn.Config(
        app,
        loop="uvloop",
        http="httptools",
        access_log=False,
        lifespan="on",
        log_level=log_level,
        workers=1,
        timeout_graceful_shutdown=graceful_seconds,
        server_header=False,
    )
    favour_the_event_loop()
    uvicorn.Server(config).run(sockets=sockets)


def merge_worker_metrics(app: Any, metrics_dir: Path, worker_index: int) -> None:
    """Make the app's /metrics render the samples of every worker writing to `metrics_dir` (workermetrics.py)."""
    from .workermetrics import WorkerMetrics  # noqa: PLC0415

    merged = WorkerMetrics(app.state.server.registry, metrics_dir, worker_index)
    app.state.server.registry = merged.registry
    merged.start()


def limit_blas_threads(n: int | None) -> None:
    """One worker on shared cores: multithreaded BLAS only adds spin-waits to small matrix products."""
    if not n:
        return
    try:
        from threadpoolctl import threadpool_limits  # noqa: PLC0415

        threadpool_limits(n, user_api="blas")
    except Exception:  # noqa: BLE001 - threadpoolctl is optional; serving works without the limit
        pass


def build(
    model_uri: str,
    *,
    workspace: Workspace | None = None,
    config: ServingConfig | None = None,
    follow_alias: bool | None = None,
    allow_pickle: bool = False,
    grpc_address: tuple[str, int] | None = None,
    primary: bool = True,
    metrics_dir: Path | None = None,
    worker_index: int = 0,
) -> Any:
    """The app for `model_uri` (loaded and smoke-tested), ready for any ASGI server; raises AidevopsError.
    `grpc_address`: (host, port) where the app also serves the Open Inference Protocol over gRPC; `primary`:
    False in all workers but one, which then run no periodic monitor pass and no compactor; `metrics_dir`: the
    folder where the workers of one server exchange metrics, so /metrics shows them all (workermetrics.py)."""
    from .app import create_app  # noqa: PLC0415
    from .requestlog import RequestLog  # noqa: PLC0415
    from .slots import ModelSlots  # noqa: PLC0415
    from .watch import AliasFollower  # noqa: PLC0415

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no progress bars in a server log
    ws = workspace or Workspace.discover()
    config = config or ServingConfig.from_env()
    limit_blas_threads(config.blas_threads)
    ref = parse_uri(model_uri)
    slots = ModelSlots.from_uri(model_uri, ws, allow_pickle=allow_pickle)
    if config.feedback_token is None and is_valid_name(slots.active.name):
        # No token in the environment (Kubernetes gives one from a Secret): the workspace's token for the
        # model's name, which `aidevops token NAME` prints, so /feedback works for whoever may read the workspace.
        config = replace(config, feedback_token=ensure_feedback_token(ws, slots.active.name))
        log.warning("POST /feedback needs the token `aidevops token %s` prints", slots.active.name)
    follower = None
    if ref.alias and (follow_alias is None or follow_alias) and config.follow_alias_seconds > 0:
        follower = AliasFollower(ref, ws, config.follow_alias_seconds, seen_version=slots.active.version)
    app = create_app(
        slots, config, RequestLog(ws.deploy_db, config), follow=follower, grpc_address=grpc_address, primary=primary
    )
    if metrics_dir is not None:
        merge_worker_metrics(app, metrics_dir, worker_index)
    return app


def serve(
    model_uri: str,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    workspace: Workspace | None = None,
    config: ServingConfig | None = None,
    follow_alias: bool | None = None,
    log_level: str = "info",
    allow_pickle: bool = False,
    grpc_port: int | None = None,
    workers: int = 1,
) -> None:
    """Serve `model_uri` on host:port until interrupted (uvloop, httptools, no access log; `workers` processes
    on one listening socket), and the Open Inference Protocol over gRPC on host:grpc_port when it is given."""
    check_workers(workers, grpc_port)
    config = config or ServingConfig.from_env()
    if workers > 1 and config.admin_token:
        raise ConfigError(
            "The admin API of `aidevops serve` changes the slots of the one process it reaches; serve with "
            "--workers 1 when AIDEVOPS_SERVING_ADMIN_TOKEN is set, or use `aidevops deploy NAME --workers N`, "
            "which applies every switch to all its workers."
        )
    sock = bind_socket(host, port)  # first: a taken port fails before seconds of model loading
    if workers > 1:
        try:
            options = {"workspace": workspace, "config": config, "follow_alias": follow_alias}
            options["allow_pickle"] = allow_pickle
            log.warning("serving %s on http://%s:%s with %d workers", model_uri, host, sock.getsockname()[1], workers)
            make_app = functools.partial(_build_worker, model_uri, options)
            serve_workers(sock, workers, log_level, lambda index: make_app)
        finally:
            sock.close()
        return
    try:
        if grpc_port is not None:
            check_grpc_port(host, grpc_port, sock.getsockname()[1])
        app = build(
            model_uri,
            workspace=workspace,
            config=config,
            follow_alias=follow_alias,
            allow_pickle=allow_pickle,
            grpc_address=None if grpc_port is None else (host, grpc_port),
        )
        model = app.state.server.slots.active
        log.warning("serving %s on http://%s:%s", model.label, host, sock.getsockname()[1])
        run_uvicorn(app, [sock], log_level)
    finally:
        sock.close()


def _build_worker(model_uri: str, options: dict, index: int, metrics_dir: Path, admin_port: int | None) -> Any:
    """The app of worker `index` of `serve --workers N` (worker 0 is the primary)."""
    return build(model_uri, **options, primary=index == 0, metrics_dir=metrics_dir, worker_index=index)


def serve_workers(
    sock: socket.socket,
    workers: int,
    log_level: str,
    app_maker: Callable[[int], Callable[..., Any]],
    *,
    admin_ports: bool = False,
    on_ready: Callable[[int, int, int | None], None] | None = None,
    on_exit: Callable[[int], None] | None = None,
) -> None:
    """Run `workers` processes serving on `sock` until SIGTERM/SIGINT; start a dead one again. Raises the first
    worker's error when one fails before all are serving (a refused model), or when workers keep dying.

    `app_maker(index)`, called here before each start, gives the picklable `make_app(index, metrics_dir,
    admin_port)` the worker calls to build its app. With `admin_ports` each worker also serves on a private
    127.0.0.1 port of its own (deploy/fanout.py reaches every worker's admin API there); `on_ready(index, pid,
    admin_port)` and `on_exit(index)` follow the workers as they serve and die."""
    ctx = multiprocessing.get_context("spawn")  # no fork of a process that may already run threads
    reports = ctx.Queue()
    stopping = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stopping.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    procs: dict[int, Any] = {}
    metrics_dir = Path(tempfile.mkdtemp(prefix="aidevops-worker-metrics-"))  # this run's only

    def start(index: int) -> None:
        proc = ctx.Process(
            target=_worker_main,
            args=(index, app_maker(index), sock, admin_ports, metrics_dir, log_level, reports, os.getpid()),
            name=f"aidevops-worker-{index}",
        )
        proc.start()
        procs[index] = proc

    def take_reports() -> None:
        while not reports.empty():
            kind, index, message, code, admin_port = reports.get()
            if kind == "error":
                raise _WorkerFailed(message, code)
            ready.add(index)
            if on_ready is not None:
                on_ready(index, procs[index].pid, admin_port)
            if index == 0 and len(procs) == 1:
                for other in range(1, workers):
                    start(other)

    ready: set[int] = set()
    deaths: deque[float] = deque()
    try:
        # Worker 0 first, the others once it is serving: N processes opening a new workspace's MLflow database
        # at once race on creating its tables, and the first load fills the caches the others then read.
        start(0)
        while not stopping.wait(0.1):
            take_reports()
            for index, proc in list(procs.items()):
                if proc.exitcode is None:
                    continue
                if on_exit is not None:
                    on_exit(index)
                if index not in ready:  # never served: a worker that cannot start stops the server
                    time.sleep(0.2)  # its error report may still be in the pipe
                    take_reports()
                    raise _WorkerFailed(f"A server worker exited with code {proc.exitcode} before it was serving.", 1)
                now = time.monotonic()
                deaths.append(now)
                while deaths and now - deaths[0] > WORKER_RESTART_WINDOW:
                    deaths.popleft()
                if len(deaths) > WORKER_MAX_RESTARTS:
                    raise _WorkerFailed(
                        f"Server workers died {len(deaths)} times within {WORKER_RESTART_WINDOW:.0f} s; "
                        "not starting them again: see the log above.",
                        1,
                    )
                log.warning("worker %d (pid %s) exited with code %s; starting it again", index, proc.pid, proc.exitcode)
                start(index)
    except _WorkerFailed as exc:
        raise _as_error(exc) from None
    finally:
        for proc in procs.values():
            if proc.exitcode is None:
                proc.terminate()  # SIGTERM: uvicorn finishes in-flight requests
        deadline = time.monotonic() + 15.0
        for proc in procs.values():
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.exitcode is None:
                proc.kill()
                proc.join(5)
        reports.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class _WorkerFailed(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.message, self.code = message, code


def _as_error(exc: _WorkerFailed) -> Exception:
    from ..errors import AidevopsError  # noqa: PLC0415

    error = AidevopsError(exc.message)
    error.exit_code = exc.code or 1
    return error


def _worker_main(
    index: int,
    make_app: Callable[..., Any],
    sock: socket.socket,
    admin_port: bool,
    metrics_dir: Path,
    log_level: str,
    reports: Any,
    parent: int,
) -> None:
    """One worker process: build its app and serve on the shared socket (and its private admin port)."""
    from ..errors import AidevopsError  # noqa: PLC0415

    die_with_parent(parent)
    logging.basicConfig(
        level=log_level.upper(), format=f"%(asctime)s %(levelname)s %(name)s[worker {index}]: %(message)s"
    )
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent decides
    sockets = [sock]
    if admin_port:
        sockets.append(bind_socket("127.0.0.1", 0))
    private_port = sockets[1].getsockname()[1] if admin_port else None
    try:
        app = make_app(index, metrics_dir, private_port)
    except AidevopsError as exc:
        reports.put(("error", index, str(exc), exc.exit_code, None))
        raise SystemExit(exc.exit_code) from None
    reports.put(("ready", index, "", 0, private_port))
    run_uvicorn(app, sockets, log_level)


def die_with_parent(parent: int) -> None:
    """SIGTERM this worker when the process that started it dies (kill -9 included): no orphan keeps the port."""
    import ctypes  # noqa: PLC0415

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)
