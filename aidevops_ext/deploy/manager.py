"""Deployments: deploy, switch, rollback, canary, promote, undeploy, list and status (docs/architecture.md §5).

A deployment is a served model reference (`NAME@ALIAS` or `NAME/VERSION`) under a name (default: the
model's name). Deploying a name that already runs switches its version through the zero-downtime path:

1. the server loads the version into its canary slot with a 0 % share (it takes no traffic) and
   smoke-tests it; a version that fails to load or its smoke test is refused there (HTTP 422);
2. the manager sends the version's reference rows to `/v2/models/NAME/versions/V/infer` and compares the
   answer with the registry model's own predictions (MLflow's pyfunc loader, see versions.py);
3. only then is the canary promoted: one atomic swap, the old version kept as `previous` for rollback.

A refused version changes nothing: the active version keeps serving. Every change, done or refused, is
a row in the deployment's history (when, operation, from, to, why, by whom).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import secrets
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError, NotFound
from ..names import is_valid_name
from ..serving.config import parse_hosts
from ..tokens import ensure_feedback_token
from ..workspace import Workspace
from .local import (
    AdminClient,
    DeploymentError,
    check_port_free,
    is_server,
    is_supervisor,
    kill_server,
    log_path,
    start_supervisor,
    stop_supervisor,
    wait_until_up,
)
from .store import FAILED, RESTARTING, RUNNING, STARTING, STOPPED, Deployment, DeployStore, HistoryEntry, default_actor
from .versions import Reference, Target, check_predictions, parse_target, parse_version, reference, resolve

DEFAULT_HOST = "127.0.0.1"
DEFAULT_FOLLOW_SECONDS = 10.0
LIVE_STATES = (STARTING, RUNNING, RESTARTING)


@dataclass
class DeployResult:
    """What a deploy did: `action` is started | switched | unchanged | planned."""

    action: str
    deployment: Deployment
    version: str
    previous: str | None = None
    detail: str = ""
    plan: dict[str, Any] = field(default_factory=dict)
    verified: bool = False  # the served predictions were compared with the registry model's

    def to_dict(self) -> dict[str, Any]:
        """JSON-able view (no admin token)."""
        return {
            "action": self.action,
            "version": self.version,
            "previous": self.previous,
            "detail": self.detail,
            "verified": self.verified,
            "deployment": self.deployment.to_dict(),
            "plan": self.plan,
        }


def _store(ws: Workspace | None) -> DeployStore:
    return DeployStore(ws or Workspace.discover())


@contextlib.contextmanager
def _locked(ws: Workspace, name: str) -> Iterator[None]:
    """One change at a time per deployment, across processes (CLI, notebook, panel): staging uses the canary slot."""
    folder = ws.state / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"deploy-{name}.lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _serialized(fn: Callable) -> Callable:
    """Run `fn(ws, name, ...)` under the deployment's lock."""

    @functools.wraps(fn)
    def wrapper(ws: Workspace | None, name: str, *args: Any, **kwargs: Any) -> Any:
        workspace = ws or Workspace.discover()
        check_name(name)
        with _locked(workspace, name):
            return fn(workspace, name, *args, **kwargs)

    return wrapper


def check_name(name: str) -> str:
    """A deployment name: letters, digits, '.', '_' and '-' (at most 63); ConfigError otherwise."""
    if not is_valid_name(name):
        raise ConfigError(
            f"Deployment name {str(name)[:80]!r} is not allowed; use letters, digits, '.', '_' or '-' "
            "(at most 63 characters), or pass --name."
        )
    return name


def get(ws: Workspace | None, name: str) -> Deployment:
    """The deployment called `name`; ConfigError naming the known ones if there is none."""
    store = _store(ws)
    dep = store.get(name)
    if dep is None:
        known = ", ".join(store.iter_names()) or "none yet"
        raise NotFound(
            f"There is no deployment named '{name}' (deployments: {known}); "
            "create one with `aidevops deploy NAME@ALIAS`."
        )
    return _observed(dep)


def _observed(dep: Deployment) -> Deployment:
    """The row with its state corrected by looking at the processes (a killed supervisor shows as 'dead')."""
    if dep.target == "local" and dep.state in LIVE_STATES and not is_supervisor(dep.supervisor_pid, dep.name):
        dep.state = "dead"
        dep.error = dep.error or "its supervisor is not running; `aidevops deploy` starts it again."
    return dep


def _running(ws: Workspace | None, name: str) -> tuple[DeployStore, Deployment, AdminClient]:
    store = _store(ws)
    dep = get(store.workspace, name)
    if dep.target != "local":
        raise ConfigError(
            f"Deployment '{name}' runs on {dep.target}; change it there (or re-render with --target {dep.target})."
        )
    if dep.state not in (RUNNING, RESTARTING):
        raise DeploymentError(
            f"Deployment '{name}' is {dep.state}, not running; start it with "
            f"`aidevops deploy {dep.ref}`" + (f" ({dep.error})" if dep.error else "") + "."
        )
    return store, dep, AdminClient(dep)


# --------------------------------------------------------------------------- deploy


def deploy(
    ws: Workspace | None,
    model_ref: str,
    *,
    name: str | None = None,
    port: int | None = None,
    host: str = DEFAULT_HOST,
    follow: bool = False,
    follow_seconds: float = DEFAULT_FOLLOW_SECONDS,
    dry_run: bool = False,
    reason: str = "",
    actor: str | None = None,
    allowed_hosts: Sequence[str] = (),
    allow_pickle: bool = False,
    grpc_port: int | None = None,
    workers: int | None = None,
) -> DeployResult:
    """Serve `model_ref` locally under `name`: start it, or switch a running one to that version.
    `allowed_hosts`: Host names the server answers besides 127.0.0.1, localhost and [::1]; `grpc_port`: where
    the server also answers the Open Inference Protocol over gRPC, on the same host; `workers`: server processes
    sharing the port (1 for a new deployment; a running one keeps its own), every admin operation applied to all
    of them (deploy/fanout.py)."""
    store = _store(ws)
    ws = store.workspace
    target = parse_target(model_ref)
    name = check_name(name or target.model)
    hosts = list(parse_hosts(list(allowed_hosts)))
    with _locked(ws, name):
        return _deploy(
            store,
            target,
            name,
            port=port,
            host=host,
            follow=follow,
            follow_seconds=follow_seconds,
            dry_run=dry_run,
            reason=reason,
            actor=actor or default_actor(),
            allowed_hosts=hosts,
            allow_pickle=allow_pickle,
            grpc_port=grpc_port,
            workers=workers,
        )


def _deploy(
    store: DeployStore,
    target: Target,
    name: str,
    *,
    port: int | None,
    host: str,
    follow: bool,
    follow_seconds: float,
    dry_run: bool,
    reason: str,
    actor: str,
    allowed_hosts: list[str],
    allow_pickle: bool = False,
    grpc_port: int | None = None,
    workers: int | None = None,
) -> DeployResult:
    from ..serving.server import check_workers  # noqa: PLC0415
    from .child import deployment_workers  # noqa: PLC0415

    ws = store.workspace
    check_workers(1 if workers is None else workers, grpc_port)
    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535):
        raise ConfigError(f"Port {port!r} is not a valid TCP port; pick one between 1 and 65535 (0: any free port).")
    if follow and not target.alias:
        raise ConfigError(f"--follow needs an alias to follow; deploy {target.model}@ALIAS instead of {target.text}.")
    if follow and not follow_seconds > 0:
        raise ConfigError("The follow interval must be a positive number of seconds.")
    existing = store.get(name)
    live = (
        existing is not None
        and existing.target == "local"
        and existing.state in LIVE_STATES
        and is_supervisor(existing.supervisor_pid, name)
    )
    if not live and not dry_run:
        if existing is not None:
            _clean_up_processes(existing)  # what is left of a dead or failed run of this deployment
            if port is None and existing.port and existing.target == "local":
                port = _reusable_port(host, existing.port)  # a restarted deployment keeps its address if it can
            if grpc_port is None and deployment_grpc_port(existing) and existing.target == "local":
                grpc_port = _reusable_port(host, deployment_grpc_port(existing) or 0) or None  # and its gRPC one
        check_port_free(host, port or 0)  # before the registry: a taken port fails at once
        if grpc_port is not None:
            from ..serving.server import check_grpc_port  # noqa: PLC0415

            check_grpc_port(host, grpc_port, port or None)
    version = resolve(ws, target)
    if live:
        assert existing is not None
        _check_compatible(existing, target, port, host, follow, follow_seconds)
        if allowed_hosts and allowed_hosts != deployment_hosts(existing):
            raise ConfigError(
                f"Deployment '{name}' answers Host names {deployment_hosts(existing) or 'of this machine only'}; "
                f"undeploy it first (`aidevops undeploy {name}`) to change them."
            )
        if grpc_port is not None and grpc_port != deployment_grpc_port(existing):
            raise ConfigError(
                f"Deployment '{name}' serves gRPC on {deployment_grpc_port(existing) or 'no port'}; undeploy it first "
                f"(`aidevops undeploy {name}`) to change its --grpc-port."
            )
        if workers is not None and workers != deployment_workers(existing):
            raise ConfigError(
                f"Deployment '{name}' runs {deployment_workers(existing)} worker(s); undeploy it first "
                f"(`aidevops undeploy {name}`) to change its --workers."
            )
        if allow_pickle and not _allows_pickle(existing):
            raise ConfigError(
                f"Deployment '{name}' was started without --allow-pickle; undeploy it first "
                f"(`aidevops undeploy {name}`) and deploy again with --allow-pickle."
            )
        if dry_run:
            return DeployResult(
                "planned",
                existing,
                version,
                existing.active_version,
                plan={"switch": {"from": existing.active_version, "to": version}, "url": existing.url},
            )
        why = reason or f"deploy {target.text}" + (f" (= v{version})" if target.alias else "")
        return _switch(store, existing, version, reason=why, actor=actor, operation="deploy")
    port = 0 if port is None else port
    plan = {
        "start": {
            "model": target.model,
            "version": version,
            "ref": target.text,
            "host": host,
            "port": port or "any free port",
            "grpc_port": grpc_port,
            "workers": workers or 1,
            "follow": follow_seconds if follow else 0,
        },
        "log": str(log_path(ws, name)),
    }
    monitoring = {**_monitoring_options(ws, target.model), "allowed_hosts": allowed_hosts}
    monitoring["allow_pickle"] = bool(allow_pickle or monitoring.get("allow_pickle"))
    monitoring["grpc_port"] = grpc_port
    monitoring["workers"] = workers or 1
    dep = Deployment.serving(
        name,
        target,
        "local",
        existing,
        host=host,
        port=port,
        follow=follow_seconds if follow else 0.0,
        alias_version=version if target.alias else None,
        active_version=version,
        state=STARTING,
        desired="running",
        admin_token=secrets.token_urlsafe(32),
        log_path=str(log_path(ws, name)),
        options=json.dumps(monitoring),
    )
    if dry_run:
        dep.admin_token = None
        return DeployResult("planned", dep, version, plan=plan)
    record_deploy = functools.partial(
        store.record, name, "deploy", to_version=version, reason=reason or f"deploy {target.text}", actor=actor
    )
    ref = reference(ws, target.model, version)
    if ref.kind == "broken":
        msg = f"{target.model} v{version} was refused ({ref.origin}); nothing was deployed."
        record_deploy(ok=False, detail=msg)
        from ..serving.errors import ModelRefused  # noqa: PLC0415

        raise ModelRefused(msg)
    ensure_feedback_token(ws, name)  # kept across redeploys: the clients holding it keep working
    store.put(dep)
    pid = start_supervisor(ws, name)
    store.update(name, supervisor_pid=pid)
    try:
        dep = wait_until_up(store, name, pid)
        problem = _verify(AdminClient(dep), dep, ref)
        if problem:
            raise _refused(target.model, version, None, problem)
    except Exception as exc:
        stop_supervisor(pid, name)
        store.update(name, state=FAILED, desired="stopped", supervisor_pid=None, server_pid=None, error=str(exc))
        record_deploy(ok=False, detail=str(exc))
        raise
    record_deploy(detail=f"serving on {dep.url}; {ref.origin or 'smoke-tested by the server'}")
    return DeployResult(
        "started",
        get(ws, name),
        version,
        detail=ref.origin,
        plan=plan,
        verified=ref.kind == "aidevops" and bool(ref.rows),
    )


def deployment_hosts(dep: Deployment) -> list[str]:
    """The Host names a local deployment answers besides the loopback ones (recorded at deploy time)."""
    try:
        options = json.loads(dep.options or "{}")
    except ValueError:
        return []
    hosts = options.get("allowed_hosts") if isinstance(options, dict) else None
    return [h for h in hosts if isinstance(h, str)] if isinstance(hosts, list) else []


def deployment_grpc_port(dep: Deployment) -> int | None:
    """The port where a local deployment answers the Open Inference Protocol over gRPC (None: no gRPC)."""
    try:
        options = json.loads(dep.options or "{}")
    except ValueError:
        return None
    port = options.get("grpc_port") if isinstance(options, dict) else None
    return port if type(port) is int else None


def _monitoring_options(ws: Workspace, model: str) -> dict[str, Any]:
    """The pipeline that produced `model` and its `monitor:` section: the rules the server's monitor applies."""
    from ..pipeline.spec import spec_for_model  # noqa: PLC0415

    spec = spec_for_model(ws.root, model)
    if spec is None:
        return {"pipeline": None, "monitor": None, "allow_pickle": False}
    return {"pipeline": spec.name, "monitor": spec.monitor, "allow_pickle": spec.allow_pickle}


def _allows_pickle(dep: Deployment) -> bool:
    """Whether the deployment's server loads pyfuncs that unpickle (--allow-pickle or the spec's `serving:`)."""
    try:
        options = json.loads(dep.options or "{}")
    except ValueError:
        return False
    return isinstance(options, dict) and options.get("allow_pickle") is True


def _reusable_port(host: str, port: int) -> int:
    try:
        check_port_free(host, port)
    except ConfigError:
        return 0
    return port


def _check_compatible(
    dep: Deployment, target: Target, port: int | None, host: str, follow: bool, follow_seconds: float
) -> None:
    """A running deployment only changes version; anything else needs an undeploy first."""
    redeploy = f"undeploy it first (`aidevops undeploy {dep.name}`) or pick another --name"
    if target.model != dep.model:
        raise ConfigError(f"Deployment '{dep.name}' serves model '{dep.model}', not '{target.model}'; {redeploy}.")
    if target.alias and target.alias != dep.alias:
        raise ConfigError(
            f"Deployment '{dep.name}' serves {dep.ref}, not {target.text}; {redeploy} "
            f"(or deploy {target.model}/VERSION to switch its version)."
        )
    if port and port != dep.port:
        raise ConfigError(
            f"Deployment '{dep.name}' already listens on port {dep.port}; {redeploy} to move it to port {port}."
        )
    if host != (dep.host or DEFAULT_HOST):
        raise ConfigError(f"Deployment '{dep.name}' listens on {dep.host}; {redeploy} to bind {host}.")
    if follow != bool(dep.follow) or (follow and follow_seconds != dep.follow):
        state = f"follows {dep.ref} every {dep.follow:g} s" if dep.follow else "does not follow its alias"
        raise ConfigError(f"Deployment '{dep.name}' {state}; {redeploy} to change that.")


def _clean_up_processes(dep: Deployment) -> None:
    """Stop what is left of a dead or failed deployment before it starts again."""
    stop_supervisor(dep.supervisor_pid, dep.name)
    kill_server(dep.server_pid, dep.name)


def _refused(model: str, version: str, active: str | None, problem: str) -> Exception:
    from ..serving.errors import ModelRefused  # noqa: PLC0415

    keeps = f"; v{active} keeps serving" if active else ""
    return ModelRefused(f"{model} v{version} was refused: {problem.rstrip('.')}{keeps}.")


def _verify(client: AdminClient, dep: Deployment, ref: Reference) -> str | None:
    """None when the server's copy of the version predicts like the registry model on its reference rows."""
    if ref.kind == "broken":
        return ref.origin
    if ref.kind != "aidevops" or not ref.rows:
        return None
    rows = ref.rows
    body = {
        "inputs": [{"name": "input-0", "shape": [len(rows), len(rows[0])], "datatype": "FP64", "data": rows}],
        "outputs": [{"name": "predict"}],
    }
    status, answer = client.request("POST", f"/v2/models/{ref.model}/versions/{ref.version}/infer", body)
    if status != 200:
        error = answer.get("error") if isinstance(answer, dict) else answer
        return f"the server answered {status} on the reference rows ({error})"
    return check_predictions(ref, (answer or {}).get("outputs") or [])


def _stage(
    store: DeployStore, dep: Deployment, client: AdminClient, version: str, *, operation: str, reason: str, actor: str
) -> tuple[Reference, Callable[..., HistoryEntry]]:
    """Load + smoke-test `version` into the canary slot at 0 % and check it against the registry; raises if refused.

    Returns the version's reference and `record(**detail)`, which writes the change's history row."""
    slots = client.slots()
    active = (slots.get("active") or {}).get("version")
    canary = slots.get("canary")
    if canary is not None and operation != "canary":
        raise ConfigError(
            f"Deployment '{dep.name}' has a canary (v{canary.get('version')} at "
            f"{100 * float(slots.get('canary_share') or 0):g} %); promote it (`aidevops promote {dep.name}`) "
            f"or clear it (`aidevops canary {dep.name} --clear`) before switching versions."
        )
    ref = reference(store.workspace, dep.model, version)
    record = functools.partial(
        store.record, dep.name, operation, from_version=active, to_version=version, reason=reason, actor=actor
    )

    def refused(problem: str) -> Exception:
        """The refusal, recorded in the history as a failed `operation` (the version never took traffic)."""
        err = _refused(dep.model, version, active, problem)
        record(ok=False, detail=str(err))
        return err

    try:
        client.admin(
            "canary",
            {
                "model_uri": f"models:/{dep.model}/{version}",
                "share": 0.0,
                "actor": actor,
                "reason": f"staged for {operation}: {reason}"[:1000],
            },
        )
    except Exception as exc:
        from ..serving.errors import ModelRefused  # noqa: PLC0415

        if isinstance(exc, ModelRefused):
            raise refused(str(exc)) from None
        raise
    problem = _verify(client, dep, ref)
    if problem:
        try:
            client.admin("canary/clear", {"actor": actor, "reason": f"refused: {problem}"[:1000]})
        finally:
            err = refused(problem)
        raise err
    return ref, record


def _switch(
    store: DeployStore, dep: Deployment, version: str, *, reason: str, actor: str, operation: str = "switch"
) -> DeployResult:
    client = AdminClient(dep)
    current = client.slots()
    active = (current.get("active") or {}).get("version")
    if active == version:
        return DeployResult("unchanged", dep, version, active, detail=f"v{version} is already active")
    ref, record = _stage(store, dep, client, version, operation=operation, reason=reason, actor=actor)
    answer = client.admin("canary/promote", {"actor": actor, "reason": reason[:1000]})
    _save_slots(store, dep.name, answer.get("slots") or {})
    record(detail=ref.origin or "smoke-tested by the server")
    return DeployResult(
        "switched",
        get(store.workspace, dep.name),
        version,
        active,
        detail=ref.origin,
        verified=ref.kind == "aidevops" and bool(ref.rows),
    )


def admin_change(
    store: DeployStore,
    client: AdminClient,
    name: str,
    operation: str,
    path: str,
    *,
    reason: str,
    actor: str | None,
    body: dict[str, Any] | None = None,
    detail: str = "",
    keep: Callable[[dict[str, Any]], None] | None = None,
) -> HistoryEntry:
    """Ask the deployment's server for one slot change (admin API `path`), then record it as `operation` in the
    history with the versions the server reports. `keep(answer)` stores what the change leaves behind (default:
    the new slots); the row's detail is `detail`, else what the server said of the change."""
    actor = actor or default_actor()
    answer = client.admin(path, {**(body or {}), "actor": actor, "reason": reason})
    event = answer.get("event") or {}
    if keep is None:
        _save_slots(store, name, answer.get("slots") or {})
    else:
        keep(answer)
    return store.record(
        name,
        operation,
        from_version=event.get("from_version"),
        to_version=event.get("to_version"),
        reason=reason,
        actor=actor,
        detail=detail or event.get("detail") or "",
    )


def _save_slots(store: DeployStore, name: str, slots: dict) -> None:
    store.update(
        name,
        active_version=(slots.get("active") or {}).get("version"),
        previous_version=(slots.get("previous") or {}).get("version"),
        canary_version=(slots.get("canary") or {}).get("version"),
        canary_share=float(slots.get("canary_share") or 0.0),
    )


@_serialized
def switch(
    ws: Workspace | None,
    name: str,
    version: str,
    *,
    reason: str = "",
    actor: str | None = None,
    operation: str = "switch",
) -> DeployResult:
    """Switch a running deployment to `version` (load, smoke-test, check against the registry, swap).

    `operation` names the change in the history (`approve`: a retrained version a person let in, loop.py)."""
    store, dep, _ = _running(ws, name)
    version = parse_version(version)
    resolve(store.workspace, Target(dep.model, version=version))
    return _switch(
        store,
        dep,
        version,
        reason=reason or f"switch to v{version}",
        actor=actor or default_actor(),
        operation=operation,
    )


# --------------------------------------------------------------------------- rollback, canary, promote


@_serialized
def rollback(ws: Workspace | None, name: str, *, reason: str = "", actor: str | None = None) -> HistoryEntry:
    """Swap the active and previous versions of a running deployment."""
    store, _, client = _running(ws, name)
    return admin_change(store, client, name, "rollback", "rollback", reason=reason or "rollback", actor=actor)


@_serialized
def canary(
    ws: Workspace | None,
    name: str,
    version: str | None = None,
    *,
    share: float | None = None,
    clear: bool = False,
    reason: str = "",
    actor: str | None = None,
) -> HistoryEntry:
    """Send `share` of the traffic to `version` (checked like a switch), change the share, or clear the canary.

    What may be asked is the API's CanaryRequest (one rule for the panel and the CLI); `version` may be `v3`."""
    from ..api.models import CanaryRequest  # noqa: PLC0415 - pydantic only when a canary changes

    version = parse_version(version) if version is not None and version != "" else None
    request = CanaryRequest.parse({"version": version, "share": share, "clear": clear, "reason": reason})
    reason, share = request.reason, request.share
    store, dep, client = _running(ws, name)
    actor = actor or default_actor()
    if request.clear:
        return admin_change(
            store, client, name, "canary_clear", "canary/clear", reason=reason or "clear canary", actor=actor
        )
    if version is None:
        return admin_change(
            store,
            client,
            name,
            "canary_share",
            "canary/share",
            reason=reason or f"canary share {share:g}",
            actor=actor,
            body={"share": share},
            detail=f"share={share:g}",
        )
    if share is None:  # CanaryRequest refuses this already: a canary that is not cleared has a share
        raise ConfigError("Give the canary's share of traffic between 0 and 1 (e.g. --share 0.1).")
    resolve(store.workspace, Target(dep.model, version=version))
    why = reason or f"canary v{version} at {100 * share:g} %"
    _stage(store, dep, client, version, operation="canary", reason=why, actor=actor)
    answer = client.admin("canary/share", {"share": share, "actor": actor, "reason": why})
    _save_slots(store, name, answer.get("slots") or {})
    active = ((answer.get("slots") or {}).get("active") or {}).get("version")
    return store.record(
        name, "canary", from_version=active, to_version=version, reason=why, actor=actor, detail=f"share={share:g}"
    )


@_serialized
def promote(ws: Workspace | None, name: str, *, reason: str = "", actor: str | None = None) -> HistoryEntry:
    """Make the canary the active version (the old active becomes previous)."""
    store, _, client = _running(ws, name)
    return admin_change(
        store, client, name, "promote", "canary/promote", reason=reason or "promote canary", actor=actor
    )


# --------------------------------------------------------------------------- undeploy, list, status


@_serialized
def undeploy(ws: Workspace | None, name: str, *, reason: str = "", actor: str | None = None) -> HistoryEntry:
    """Stop a deployment's supervisor and server (Kubernetes: delete its objects) and mark it stopped."""
    store = _store(ws)
    dep = get(store.workspace, name)
    actor = actor or default_actor()
    if dep.target == "kubernetes":
        from .kubernetes import delete  # noqa: PLC0415

        delete(store.workspace, dep)
    else:
        store.update(name, desired="stopped")
        stop_supervisor(dep.supervisor_pid, name)
        kill_server(dep.server_pid, name)
    store.update(name, state=STOPPED, desired="stopped", supervisor_pid=None, server_pid=None, error=None)
    return store.record(name, "undeploy", from_version=dep.active_version, reason=reason or "undeploy", actor=actor)


def undeploy_all(ws: Workspace | None, *, reason: str = "undeploy all") -> list[str]:
    """Stop every local deployment of a workspace that still has processes (test and notebook clean-up)."""
    store = _store(ws)
    if not store.path.exists():
        return []
    stopped = []
    for dep in store.all():
        if dep.target == "local" and (
            is_supervisor(dep.supervisor_pid, dep.name) or is_server(dep.server_pid, dep.name)
        ):
            undeploy(store.workspace, dep.name, reason=reason)
            stopped.append(dep.name)
    return stopped


def list_deployments(ws: Workspace | None = None) -> list[Deployment]:
    """Every deployment of the workspace, with dead ones shown as such."""
    store = _store(ws)
    if not store.path.exists():
        return []
    return [_observed(d) for d in store.all()]


def history(ws: Workspace | None, name: str | None = None, limit: int = 50) -> list[HistoryEntry]:
    """The latest changes (of one deployment, or of all), oldest first."""
    store = _store(ws)
    if name is not None:
        get(store.workspace, name)
    return store.history(name, limit)


@dataclass
class DeploymentStatus:
    """One deployment now: its row, its live slots (None when the server does not answer) and recent history.

    The active, previous and canary versions are derived here once, for the CLI's listing and the API's view:
    the live slots when the server answered, else what the store last recorded.
    """

    deployment: Deployment
    slots: dict[str, Any] | None = None
    history: list[HistoryEntry] = field(default_factory=list)
    error: str | None = None  # why the slots could not be read

    def _slot(self, key: str) -> dict[str, Any] | None:
        slot = self.slots.get(key) if self.slots else None
        return slot if isinstance(slot, dict) else None

    def _live(self, key: str, recorded: str | None) -> str | None:
        if self.slots is None:
            return recorded
        slot = self._slot(key)
        return slot.get("version") if slot else None

    @property
    def active_version(self) -> str | None:
        return self._live("active", None) or self.deployment.active_version

    @property
    def previous_version(self) -> str | None:
        return self._live("previous", self.deployment.previous_version)

    @property
    def canary_version(self) -> str | None:
        return self._live("canary", self.deployment.canary_version)

    @property
    def canary_share(self) -> float:
        share = self.slots.get("canary_share") if self.slots is not None else self.deployment.canary_share
        return float(share or 0.0)

    @property
    def health(self) -> str:
        """healthy (the server answered now), unreachable (it should be up but did not answer), else the state."""
        if self.slots is not None:
            return "healthy"
        return "unreachable" if self.deployment.state in (RUNNING, RESTARTING) else self.deployment.state

    @property
    def example(self) -> dict[str, Any] | None:
        """The served active version's own input example (a foreign MLflow model's), if it has one."""
        active = self._slot("active")
        example = active.get("example") if active else None
        return example if isinstance(example, dict) else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able view (`aidevops deployments NAME --json`), with the derived versions."""
        return {
            "deployment": self.deployment.to_dict(),
            "slots": self.slots,
            "history": [h.to_dict() for h in self.history],
            "error": self.error,
            "health": self.health,
            "active_version": self.active_version,
            "previous_version": self.previous_version,
            "canary_version": self.canary_version,
            "canary_share": self.canary_share,
        }


def status(ws: Workspace | None, name: str, history_rows: int = 20) -> DeploymentStatus:
    """One deployment: its row, its live slots (when it answers) and its recent history (oldest first)."""
    store = _store(ws)
    dep = get(store.workspace, name)
    out = DeploymentStatus(dep, history=store.history(name, history_rows))
    if dep.target == "local" and dep.state in (RUNNING, RESTARTING):
        try:
            slots = AdminClient(dep, timeout=5.0).slots(timeout=5.0)
            slots.pop("history", None)
            out.slots = slots
        except DeploymentError as exc:
            out.error = str(exc)
    return out


def running(ws: Workspace | None, name: str) -> Deployment:
    """The local deployment `name`, or DeploymentError when it is not running on this machine (with the command to start it)."""
    dep = get(ws, name)
    if dep.target != "local" or not dep.url or dep.state not in LIVE_STATES:
        raise DeploymentError(
            f"Deployment '{name}' is not running here (state: {dep.state}); start it with "
            f"`aidevops deploy {dep.ref} --name {name}`."
        )
    return dep


def monitor_summary(ws: Workspace | None, name: str, *, refresh: bool = True) -> dict[str, Any]:
    """The live monitor of a running local deployment (GET /monitor; refresh: computed now) plus its alert events."""
    from ..monitoring.alertstore import AlertStore  # noqa: PLC0415

    store = _store(ws)
    dep = running(store.workspace, name)
    status, answer = AdminClient(dep, timeout=60.0).request("GET", "/monitor" + ("?refresh=1" if refresh else ""))
    if status != 200 or not isinstance(answer, dict):
        problem = answer.get("error") if isinstance(answer, dict) else str(answer)[:300]
        raise DeploymentError(f"The server of '{name}' answered {status} to /monitor: {problem}")
    answer["events"] = AlertStore(store.workspace.deploy_db).events(name, limit=50)
    from .shadow import live_slots, report  # noqa: PLC0415

    answer["shadow"] = report(store.workspace, name, live_slots(dep))  # None: this deployment never had a shadow
    return answer


# --------------------------------------------------------------------------- checks a user (or notebook) runs


def smoke_protocols(ws: Workspace | None, name: str, *, check: bool = True) -> dict[str, Any]:
    """Send the active version's reference rows through both protocols; DeploymentError if one fails (with check)."""
    store = _store(ws)
    dep = get(store.workspace, name)
    client = AdminClient(dep, timeout=30.0)
    version = dep.active_version
    ref = reference(store.workspace, dep.model, version) if version else None
    rows = (ref.rows if ref is not None and ref.rows else None) or _rows_from_metadata(client, dep)
    results: dict[str, Any] = {"url": dep.url, "model": dep.model, "version": version, "rows": rows}
    status_, answer = client.request("POST", "/invocations", {"inputs": rows})
    results["invocations"] = {
        "status": status_,
        "predictions": (answer or {}).get("predictions") if isinstance(answer, dict) else answer,
    }
    body = {"inputs": [{"name": "input-0", "shape": [len(rows), len(rows[0])], "datatype": "FP64", "data": rows}]}
    status_, answer = client.request("POST", f"/v2/models/{dep.model}/infer", body)
    results["v2_infer"] = {
        "status": status_,
        "outputs": (answer or {}).get("outputs") if isinstance(answer, dict) else answer,
    }
    results["ok"] = results["invocations"]["status"] == 200 and results["v2_infer"]["status"] == 200
    if ref is not None and ref.expected is not None and results["ok"]:
        results["matches_registry"] = check_predictions(ref, results["v2_infer"]["outputs"] or []) is None
    if check and not (results["ok"] and results.get("matches_registry", True)):
        failed = [
            f"{p} answered {results[k]['status']}"
            for p, k in (("/invocations", "invocations"), ("/v2 infer", "v2_infer"))
            if results[k]["status"] != 200
        ]
        raise DeploymentError(
            f"Deployment '{name}' failed its protocol smoke test ("
            + ("; ".join(failed) or "predictions differ from the registry model's")
            + f"); see its log {dep.log_path}."
        )
    return results


def _rows_from_metadata(client: AdminClient, dep: Deployment) -> list[list[float]]:
    status_, meta = client.request("GET", f"/v2/models/{dep.model}")
    n = 1
    if status_ == 200 and isinstance(meta, dict):
        shape = ((meta.get("inputs") or [{}])[0]).get("shape") or [-1, 1]
        n = shape[-1] if isinstance(shape[-1], int) and shape[-1] > 0 else 1
    return [[0.0] * n]


def curl_example(dep: Deployment, rows: list[list[float]] | None = None, body: dict | None = None) -> str:
    """A copy-pasteable curl command scoring one row on the deployment (`body`: the model's own input example)."""
    import json  # noqa: PLC0415

    if body is None:
        row = [float(f"{v:.4g}") for v in (rows or [[0.0]])[0]]  # short enough to read and paste
        body = {"inputs": [row]}
    text = json.dumps(body, separators=(",", ":")).replace("'", "'\\''")  # quoted for the shell's '...'
    return f"curl -s -X POST {dep.url}/invocations -H 'Content-Type: application/json' -d '{text}'"
