"""The server process of a local deployment, started by its supervisor on an inherited listening socket.

`python -m aidevops_ext.deploy.child NAME --workspace ROOT --fd N --parent PID` reads the deployment's
row in deploy.db and serves the versions recorded there (active, and previous/canary when present), so
a server restarted after a crash comes back as the same deployment. Versions cached by the deployment
manager load from `.aidevops/deploy-cache/` (milliseconds, no MLflow import); others load from the
registry. Every version passes the server's smoke test before it takes traffic. The admin token arrives
in the environment (AIDEVOPS_SERVING_ADMIN_TOKEN) and the feedback token from the workspace
(aidevops_ext/tokens.py), never on the command line. A deployment made with `--workers N` (N > 1) is served
by N worker processes this one supervises (fanout.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import socket
import sys
from dataclasses import replace
from pathlib import Path

from ..errors import AidevopsError
from ..tokens import ensure_feedback_token
from ..workspace import Workspace

log = logging.getLogger("aidevops.deploy")


def build_app(ws: Workspace, name: str, *, slots_state: dict | None = None, primary: bool = True, follow: bool = True):
    """The ASGI app serving deployment `name` as recorded in deploy.db. `slots_state` (versions of active,
    previous, canary and shadow, and the canary's share: fanout.py's record of what its workers serve) replaces
    the versions of the row; `primary`: False in all workers but one (no monitor pass, no compactor); `follow`:
    False where another process follows the deployment's alias."""
    from ..serving.app import create_app  # noqa: PLC0415
    from ..serving.config import ServingConfig  # noqa: PLC0415
    from ..serving.errors import ModelRefused  # noqa: PLC0415
    from ..serving.loader import ModelRef  # noqa: PLC0415
    from ..serving.requestlog import RequestLog  # noqa: PLC0415
    from ..serving.server import limit_blas_threads  # noqa: PLC0415
    from ..serving.slots import ModelSlots, SlotState, prepare_model  # noqa: PLC0415
    from ..serving.watch import AliasFollower  # noqa: PLC0415
    from .store import DeployStore  # noqa: PLC0415

    dep = DeployStore(ws).get(name)
    if dep is None:
        raise AidevopsError(f"Deployment '{name}' is not in {ws.deploy_db}; deploy it with `aidevops deploy`.")
    if slots_state is not None:
        dep = replace(
            dep,
            active_version=slots_state.get("active") or dep.active_version,
            previous_version=slots_state.get("previous"),
            canary_version=slots_state.get("canary"),
            canary_share=slots_state.get("canary_share") or 0.0,
        )
    config = ServingConfig.from_env(follow_alias_seconds=float(dep.follow or 0.0))
    config = replace(
        config,
        feedback_token=ensure_feedback_token(ws, name),  # from the workspace, never the command line
        allowed_hosts=_allowed_hosts(config.allowed_hosts, dep),
    )
    limit_blas_threads(config.blas_threads)

    allow_pickle = _allows_pickle(dep)

    def load(version: str):
        return prepare_model(_source(ws, dep.model, version, dep.alias), ws, alias=dep.alias, allow_pickle=allow_pickle)

    active = (
        load(dep.active_version)
        if dep.active_version
        else prepare_model(f"models:/{dep.ref}", ws, alias=dep.alias, allow_pickle=allow_pickle)
    )
    slots = ModelSlots(active, workspace=ws, alias=dep.alias, allow_pickle=allow_pickle)
    extra = {}
    for slot, version in (("previous", dep.previous_version), ("canary", dep.canary_version)):
        if version and version != active.version:
            try:
                extra[slot] = load(version)
            except ModelRefused as exc:  # serving the active version matters more than restoring this slot
                log.warning("not restoring the %s slot: %s", slot, exc)
    if extra:
        canary = extra.get("canary")
        slots.state = SlotState(
            active=active,
            previous=extra.get("previous"),
            canary=canary,
            canary_share=float(dep.canary_share or 0.0) if canary is not None else 0.0,
        )
    follower = None
    if follow and dep.alias and config.follow_alias_seconds > 0:
        ref = ModelRef(f"models:/{dep.model}@{dep.alias}", name=dep.model, alias=dep.alias)
        follower = AliasFollower(ref, ws, config.follow_alias_seconds, seen_version=dep.alias_version or active.version)
    app = create_app(
        slots,
        config,
        RequestLog(ws.deploy_db, config),
        follow=follower,
        monitor=monitor_config(dep),
        deployment=dep.name,
        grpc_address=_grpc_address(dep),
        primary=primary,
    )
    shadow = slots_state.get("shadow") if slots_state is not None else _options(dep).get("shadow_version")
    _restore_shadow(slots, shadow, load)  # after create_app: the shadow logs where the app's request log is
    return app


def _restore_shadow(slots, version, load) -> None:
    """Load the shadow the deployment had (deploy/shadow.py records it) after a restart; serve without it if refused."""
    from ..serving.errors import ModelRefused  # noqa: PLC0415

    if not isinstance(version, str):
        return
    try:
        slots.set_shadow(load(version), actor="supervisor", reason="restored after a restart")
    except ModelRefused as exc:  # serving matters more than the shadow
        log.warning("not restoring the shadow v%s: %s", version, exc)


def _options(dep) -> dict:
    """The options recorded at deploy time (manager.py writes them as a JSON object); {} if unreadable."""
    try:
        options = json.loads(dep.options or "{}")
    except ValueError:
        return {}
    return options if isinstance(options, dict) else {}


def deployment_workers(dep) -> int:
    """How many server processes the deployment runs (`deploy --workers N`; 1 when not recorded)."""
    workers = _options(dep).get("workers")
    return workers if type(workers) is int and workers >= 1 else 1


def _grpc_address(dep) -> tuple[str, int] | None:
    """(host, port) of the deployment's Open Inference Protocol over gRPC (`deploy --grpc-port`), or None."""
    port = _options(dep).get("grpc_port")
    return (dep.host or "127.0.0.1", port) if type(port) is int else None


def _allowed_hosts(configured: tuple[str, ...], dep) -> tuple[str, ...]:
    """Host names the server answers besides the loopback ones: the environment's, those given at deploy time
    (`--allowed-host`), and the address it binds when that is one address (not 0.0.0.0 or ::)."""
    from ..serving.config import parse_hosts  # noqa: PLC0415

    given = _options(dep).get("allowed_hosts")
    given = [h for h in given if isinstance(h, str)] if isinstance(given, list) else []
    bound = [dep.host] if dep.host and dep.host not in ("0.0.0.0", "::", "") else []
    return parse_hosts([*configured, *given, *bound])


def _allows_pickle(dep) -> bool:
    """Whether this deployment may load pyfuncs that unpickle: --allow-pickle or its spec's `serving:` section,
    recorded at deploy time (serving/loader.py)."""
    return _options(dep).get("allow_pickle") is True


def monitor_config(dep):
    """The deployment's alert rules (the `monitor:` section of its pipeline, recorded at deploy time)."""
    from ..monitoring.rules import parse_monitor  # noqa: PLC0415

    try:
        return parse_monitor(_options(dep).get("monitor"))
    except AidevopsError as exc:  # a spec edited since: serve, monitor with defaults, say why
        log.warning("monitor rules of %r not usable (%s); monitoring without alert rules", dep.name, exc)
        return parse_monitor(None)


def _source(ws: Workspace, model: str, version: str, alias: str | None):
    """A ServedModel from the deployment cache, else the registry URI (loaded by the server's loader)."""
    from .versions import cached_model_file  # noqa: PLC0415

    uri = f"models:/{model}/{version}"
    path = cached_model_file(ws, model, version)
    if path is None:
        return uri
    from ..serving.models import AidevopsModel  # noqa: PLC0415
    from ..trainer import load_model  # noqa: PLC0415

    try:
        estimator = load_model(path)
    except AidevopsError as exc:
        log.warning("cached %s v%s does not load (%s); loading it from the registry", model, version, exc)
        return uri
    return AidevopsModel.from_estimator(estimator, name=model, version=str(version), source=uri, alias=alias)


def main(argv: list[str] | None = None) -> int:
    """Serve one deployment on the inherited socket until SIGTERM (its workers with `deploy --workers N`)."""
    from ..serving.server import die_with_parent, run_uvicorn  # noqa: PLC0415
    from .store import DeployStore  # noqa: PLC0415

    p = argparse.ArgumentParser(prog="python -m aidevops_ext.deploy.child")
    p.add_argument("name")
    p.add_argument("--workspace", required=True)
    p.add_argument("--fd", type=int, required=True, help="listening socket inherited from the supervisor")
    p.add_argument("--parent", type=int, default=None, help="the supervisor's pid")
    p.add_argument("--log-level", default="warning")
    args = p.parse_args(argv)
    if args.parent:
        die_with_parent(args.parent)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s server[%(process)d]: %(message)s")
    sock = socket.socket(fileno=args.fd)
    ws = Workspace(Path(args.workspace).resolve())
    try:
        dep = DeployStore(ws).get(args.name)
        if dep is not None and deployment_workers(dep) > 1:
            from .fanout import serve_deployment  # noqa: PLC0415

            serve_deployment(ws, args.name, sock, deployment_workers(dep), args.log_level)
            return 0
        app = build_app(ws, args.name)
        model = app.state.server.slots.active
        log.warning("serving %s on %s", model.label, sock.getsockname())
        run_uvicorn(app, [sock], args.log_level, graceful_seconds=5)
    except AidevopsError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    finally:
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
