"""Shadow a deployment: a registered version gets a mirrored copy of live traffic, and its evidence is read back.

`start(ws, NAME, VERSION)` asks the deployment's server (admin API, the same token as switch and canary) to
load the version into its shadow slot; the server mirrors each request the active version answered to it,
after the answer is sent (serving/shadow.py). `stop` unloads it. `report` is the `shadow` part of the
monitor summary (`aidevops monitor NAME`, the Monitor API): agreement with the active version and, once
labels arrive, both accuracies with Wilson intervals, from deploy.db's shadow log, plus the server's count
of requests dropped because the shadow fell behind.

The running shadow's version is kept in the deployment's options, so a server restarted by its supervisor
loads it again (deploy/child.py); a new `aidevops deploy` of a stopped deployment starts without one. What a
shadow answered stays in the log after it stops.
"""

from __future__ import annotations

import json
from typing import Any

from ..workspace import Workspace
from .local import DeploymentError
from .manager import _running, _serialized, admin_change
from .store import HistoryEntry, default_actor
from .versions import Target, parse_version, resolve


@_serialized
def start(ws: Workspace | None, name: str, version: str, *, reason: str = "", actor: str | None = None) -> HistoryEntry:
    """Load `version` of the deployment's model into its server's shadow slot (replacing a shadow already there)."""
    store, dep, client = _running(ws, name)
    version = parse_version(version)
    resolve(store.workspace, Target(dep.model, version=version))  # ConfigError naming the versions there are
    actor = actor or default_actor()
    why = reason or f"shadow v{version}"
    try:
        answer = client.admin("shadow", {"model_uri": f"models:/{dep.model}/{version}", "actor": actor, "reason": why})
    except Exception as exc:
        from ..serving.errors import ModelRefused  # noqa: PLC0415

        if isinstance(exc, ModelRefused):
            store.record(
                name,
                "shadow",
                from_version=dep.active_version,
                to_version=version,
                reason=why,
                actor=actor,
                ok=False,
                detail=str(exc),
            )
        raise
    event = answer.get("event") or {}
    _remember(store, dep, version)
    return store.record(
        name, "shadow", from_version=event.get("from_version"), to_version=version, reason=why, actor=actor
    )


@_serialized
def stop(ws: Workspace | None, name: str, *, reason: str = "", actor: str | None = None) -> HistoryEntry:
    """Stop mirroring traffic to the deployment's shadow and unload it (its log stays for the monitor)."""
    store, dep, client = _running(ws, name)
    return admin_change(
        store,
        client,
        name,
        "shadow_stop",
        "shadow/clear",
        reason=reason or "stop shadow",
        actor=actor,
        keep=lambda _: _remember(store, dep, None),
    )


def _remember(store: Any, dep: Any, version: str | None) -> None:
    """Record the running shadow's version in the deployment's options (None: no shadow), for restarts."""
    try:
        options = json.loads(dep.options or "{}")
    except ValueError:
        options = {}
    if not isinstance(options, dict):
        options = {}
    options.pop("shadow_version", None)
    if version is not None:
        options["shadow_version"] = version
    store.update(dep.name, options=json.dumps(options))


def report(ws: Workspace, name: str, slots: dict[str, Any] | None, version: str | None = None) -> dict[str, Any] | None:
    """The shadow's evidence: of `version` if given (None when it was never shadowed), else the running shadow's
    (from the live `slots`), else the last one logged; None if there is none."""
    from ..serving.shadow import summary  # noqa: PLC0415

    live = (slots or {}).get("shadow")
    running = live.get("version") if isinstance(live, dict) else None
    if version is not None and not ws.deploy_db.is_file():
        return None
    out = summary(ws.deploy_db, name, version or running)
    if out is None or (version is not None and out["requests"] == 0 and running != version):
        return None
    here = live if isinstance(live, dict) and running == out["version"] else None  # the slots of this version
    out["running"] = here is not None
    out["dropped"] = int(here.get("dropped") or 0) if here is not None else 0
    out["mirrored"] = int(here.get("mirrored") or 0) if here is not None else None
    return out


def live_slots(dep: Any) -> dict[str, Any] | None:
    """The server's slots (None when it does not answer): where the running shadow and its drop count are."""
    from .local import AdminClient  # noqa: PLC0415

    try:
        return AdminClient(dep, timeout=5.0).slots(timeout=5.0)
    except DeploymentError:
        return None
