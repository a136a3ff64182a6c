"""Running the server: `serve(model_uri, host, port)` loads and smoke-tests the model, then runs uvicorn
(uvloop, httptools, no access log, one worker) on a socket bound before the model loads, so a port in
use fails at once with one sentence.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
from dataclasses import replace
from typing import Any

from ..errors import ConfigError
from ..names import is_valid_name
from ..tokens import ensure_feedback_token
from ..workspace import Workspace
from .config import ServingConfig
from .loader import parse_uri

log = logging.getLogger("aidevops.serving")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


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
) -> Any:
    """The app for `model_uri` (loaded and smoke-tested), ready for any ASGI server; raises AidevopsError.
    `grpc_address`: (host, port) where the app also serves the Open Inference Protocol over gRPC."""
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
    return create_app(slots, config, RequestLog(ws.deploy_db, config), follow=follower, grpc_address=grpc_address)


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
) -> None:
    """Serve `model_uri` on host:port until interrupted (one uvicorn worker, uvloop, httptools, no access log),
    and the Open Inference Protocol over gRPC on host:grpc_port when it is given."""
    import uvicorn  # noqa: PLC0415

    sock = bind_socket(host, port)  # first: a taken port fails before seconds of model loading
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
        uv_config = uvicorn.Config(
            app,
            loop="uvloop",
            http="httptools",
            access_log=False,
            lifespan="on",
            log_level=log_level,
            workers=1,
            timeout_graceful_shutdown=10,
            server_header=False,
        )
        server = uvicorn.Server(uv_config)
        model = app.state.server.slots.active
        log.warning("serving %s on http://%s:%s", model.label, host, sock.getsockname()[1])
        server.run(sockets=[sock])
    finally:
        sock.close()
