"""Deployments and their history in the workspace's `deploy.db` (SQLite, WAL), beside the server's request log.

Tables (their layout and migrations are in aidevops_ext/db.py; the request log, alerts and retrainings share the file):
- `deployments`: one row per deployment name: the model and alias it serves, the target, where it listens,
  the versions in its slots, the supervisor's and server's pids, its state, and its admin token;
- `deployment_history`: every change: when, which operation, from and to which version, why, by whom,
  whether it was done or refused (and why).

The admin token makes the file sensitive: db.connect creates (and keeps) it readable by its owner only.
Each call opens a short-lived connection, so the CLI, the supervisor and a notebook can share the file.
"""

from __future__ import annotations

import getpass
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import db
from ..workspace import Workspace

if TYPE_CHECKING:
    from .versions import Target

# Deployment states: what the supervisor last reported (or what the manager found, for a dead one).
STARTING, RUNNING, RESTARTING, FAILED, STOPPED = "starting", "running", "restarting", "failed", "stopped"
RENDERED, APPLIED = "rendered", "applied"  # Kubernetes target


@dataclass
class Deployment:
    """One row of `deployments`; the admin token is kept out of repr and `to_dict`."""

    name: str
    model: str
    ref: str
    state: str
    created: float
    updated: float
    alias: str | None = None
    target: str = "local"
    host: str | None = None
    port: int | None = None
    follow: float = 0.0
    alias_version: str | None = None
    active_version: str | None = None
    previous_version: str | None = None
    canary_version: str | None = None
    canary_share: float = 0.0
    supervisor_pid: int | None = None
    server_pid: int | None = None
    desired: str = "running"
    restarts: int = 0
    error: str | None = None
    admin_token: str | None = None
    log_path: str | None = None
    options: str | None = None  # JSON: target-specific settings (Kubernetes: namespace, image, context...)

    def __repr__(self) -> str:
        return f"Deployment(name={self.name!r}, ref={self.ref!r}, state={self.state!r}, port={self.port!r})"

    @classmethod
    def serving(cls, name: str, target: Target, where: str, existing: Deployment | None, **row: Any) -> Deployment:
        """A row for `name` serving `target` (its model, reference and alias) on `where` (local or kubernetes);
        replacing `existing`, it keeps that row's creation time."""
        now = time.time()
        created = existing.created if existing is not None else now
        return cls(
            name=name,
            model=target.model,
            ref=target.text,
            alias=target.alias,
            target=where,
            created=created,
            updated=now,
            **row,
        )

    @property
    def url(self) -> str | None:
        """Base URL of a local deployment (127.0.0.1 when it listens on every address)."""
        if self.port is None or self.target != "local":
            return None
        host = self.host or "127.0.0.1"
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able view, without the admin token."""
        out = asdict(self)
        out.pop("admin_token", None)
        out["url"] = self.url
        return out


@dataclass(frozen=True)
class HistoryEntry:
    """One row of `deployment_history`."""

    deployment: str
    ts: float
    operation: str
    from_version: str | None
    to_version: str | None
    reason: str
    actor: str
    ok: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-able view with an ISO time."""
        out = asdict(self)
        out["when"] = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.ts))
        return out


_COLUMNS = [f.name for f in fields(Deployment)]


def default_actor() -> str:
    """Who is making a change: AIDEVOPS_ACTOR, else the login name."""
    actor = os.environ.get("AIDEVOPS_ACTOR")
    if actor:
        return actor[:200]
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user database in some containers
        return "unknown"


class DeployStore:
    """Reads and writes deployments and history in one workspace's deploy.db."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.path: Path = workspace.deploy_db

    # ------------------------------------------------------------------ connection
    def connect(self) -> sqlite3.Connection:
        """A connection to deploy.db, created private to its owner and at the current layout (see db.py)."""
        conn = db.connect(self.path)
        conn.row_factory = sqlite3.Row
        return conn

    def _run(self, sql: str, args: tuple | dict = ()) -> list[sqlite3.Row]:
        conn = self.connect()
        try:
            return conn.execute(sql, args).fetchall()
        finally:
            conn.close()

    # ------------------------------------------------------------------ deployments
    def get(self, name: str) -> Deployment | None:
        """The deployment called `name`, or None (reading never creates deploy.db)."""
        if not self.path.exists():
            return None
        rows = self._run("SELECT * FROM deployments WHERE name = ?", (name,))
        return _deployment(rows[0]) if rows else None

    def all(self) -> list[Deployment]:
        """Every deployment, by name."""
        if not self.path.exists():
            return []
        return [_deployment(r) for r in self._run("SELECT * FROM deployments ORDER BY name")]

    def put(self, dep: Deployment) -> None:
        """Insert or replace a whole row."""
        dep.updated = time.time()
        values = {c: getattr(dep, c) for c in _COLUMNS}
        cols = ", ".join(_COLUMNS)
        marks = ", ".join(f":{c}" for c in _COLUMNS)
        self._run(f"INSERT OR REPLACE INTO deployments ({cols}) VALUES ({marks})", values)

    def update(self, name: str, **changes: Any) -> None:
        """Change some columns of one row (unknown columns are a programming error)."""
        bad = set(changes) - set(_COLUMNS)
        if bad:
            raise KeyError(f"unknown deployment columns {sorted(bad)}")
        changes["updated"] = time.time()
        sets = ", ".join(f"{c} = :{c}" for c in changes)
        self._run(f"UPDATE deployments SET {sets} WHERE name = :_name", {**changes, "_name": name})

    def delete(self, name: str) -> None:
        """Forget a deployment row (its history stays)."""
        self._run("DELETE FROM deployments WHERE name = ?", (name,))

    # ------------------------------------------------------------------ history
    def record(
        self,
        deployment: str,
        operation: str,
        *,
        from_version: str | None = None,
        to_version: str | None = None,
        reason: str = "",
        actor: str | None = None,
        ok: bool = True,
        detail: str = "",
        ts: float | None = None,
    ) -> HistoryEntry:
        """Append one history row (an event already recorded at the same instant is kept once)."""
        entry = HistoryEntry(
            deployment,
            float(ts if ts is not None else time.time()),
            operation,
            None if from_version is None else str(from_version),
            None if to_version is None else str(to_version),
            (reason or "")[:1000],
            (actor or default_actor())[:200],
            bool(ok),
            (detail or "")[:2000],
        )
        self._run(
            "INSERT OR IGNORE INTO deployment_history (deployment, ts, operation, from_version, to_version, reason, "
            "actor, ok, detail) VALUES (?,?,?,?,?,?,?,?,?)",
            (
                entry.deployment,
                entry.ts,
                entry.operation,
                entry.from_version,
                entry.to_version,
                entry.reason,
                entry.actor,
                int(entry.ok),
                entry.detail,
            ),
        )
        return entry

    def history(self, deployment: str | None = None, limit: int = 50) -> list[HistoryEntry]:
        """The latest `limit` history rows (of one deployment, or all), oldest first."""
        if not self.path.exists():
            return []
        if deployment is None:
            rows = self._run("SELECT * FROM deployment_history ORDER BY ts DESC, id DESC LIMIT ?", (limit,))
        else:
            rows = self._run(
                "SELECT * FROM deployment_history WHERE deployment = ? ORDER BY ts DESC, id DESC LIMIT ?",
                (deployment, limit),
            )
        return [
            HistoryEntry(
                r["deployment"],
                r["ts"],
                r["operation"],
                r["from_version"],
                r["to_version"],
                r["reason"],
                r["actor"],
                bool(r["ok"]),
                r["detail"],
            )
            for r in reversed(rows)
        ]

    def iter_names(self) -> Iterator[str]:
        """Names of every deployment."""
        if not self.path.exists():
            return
        for r in self._run("SELECT name FROM deployments ORDER BY name"):
            yield r["name"]


def _deployment(row: sqlite3.Row) -> Deployment:
    return Deployment(**{c: row[c] for c in _COLUMNS})
