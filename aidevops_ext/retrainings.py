"""The record of retrainings (deploy.db's `retrains`) and the per-deployment lock that keeps them one at a time.

The closed loop (loop.py) writes these records; the deployment's supervisor (deploy/autoretrain.py) reads
them to decide whether an alert may start another retraining, and the CLI and panels list them. Keeping
them here, below both, is what lets deploy/ read the loop's state without importing the loop
(docs/architecture.md, import rules).
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import asdict, dataclass
from typing import Any

from . import db
from .errors import ConfigError
from .workspace import Workspace

# Statuses of a retraining.
RUNNING, SWITCHED, GATE_FAILED, UNCHANGED, FAILED = "running", "switched", "gate failed", "unchanged", "failed"
AWAITING, REJECTED, SUPERSEDED = "awaiting approval", "rejected", "superseded"


@dataclass
class Retraining:
    """One row of `retrains`: an alert (or a person) → a pipeline run → a version → a deployment change."""

    id: int
    deployment: str
    model: str
    trigger: str  # "alert" | "manual"
    status: str
    started: float
    alert_event_id: int | None = None
    rule: str | None = None
    finished: float | None = None
    pipeline: str | None = None
    pipeline_run_id: str | None = None
    from_version: str | None = None
    version: str | None = None
    gate_passed: bool | None = None
    champion_moved: bool | None = None
    switched_to: str | None = None
    training_rows: int | None = None
    live_rows: int | None = None
    extra_data: str | None = None
    actor: str | None = None
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _connect(ws: Workspace) -> sqlite3.Connection:
    conn = db.connect(ws.deploy_db)  # `retrains` is defined with deploy.db's other tables, in db.py
    conn.row_factory = sqlite3.Row
    return conn


def _row(r: sqlite3.Row) -> Retraining:
    d = dict(r)
    for key in ("gate_passed", "champion_moved"):
        d[key] = None if d[key] is None else bool(d[key])
    return Retraining(**d)


def retrainings(ws: Workspace, deployment: str | None = None, *, limit: int = 50) -> list[Retraining]:
    """Recorded retrainings, newest last (of one deployment, or all)."""
    if not ws.deploy_db.is_file():
        return []
    conn = _connect(ws)
    try:
        rows = conn.execute(
            "SELECT * FROM (SELECT * FROM retrains"
            + (" WHERE deployment = ?" if deployment else "")
            + " ORDER BY id DESC LIMIT ?) ORDER BY id",
            ((deployment,) if deployment else ()) + (limit,),
        ).fetchall()
    finally:
        conn.close()
    return [_row(r) for r in rows]


def start(ws: Workspace, **fields: Any) -> int:
    """Record a retraining as it starts; refused while another of the same deployment is running."""
    conn = _connect(ws)
    try:
        conn.execute("BEGIN IMMEDIATE")
        busy = conn.execute(
            "SELECT id, started FROM retrains WHERE deployment = ? AND status = ?", (fields["deployment"], RUNNING)
        ).fetchone()
        if busy is not None:
            conn.execute("ROLLBACK")
            raise ConfigError(
                f"deployment '{fields['deployment']}' is already being retrained (retraining #{busy['id']}); "
                "wait for it to finish (`aidevops retrains`)."
            )
        cols = ", ".join(fields)
        cur = conn.execute(
            f"INSERT INTO retrains ({cols}) VALUES ({', '.join('?' * len(fields))})", tuple(fields.values())
        )
        conn.execute("COMMIT")
        return db.inserted_id(cur)
    finally:
        conn.close()


def get(ws: Workspace, rid: int) -> Retraining:
    conn = _connect(ws)
    try:
        return _row(conn.execute("SELECT * FROM retrains WHERE id = ?", (rid,)).fetchone())
    finally:
        conn.close()


def update(ws: Workspace, rid: int, **fields: Any) -> None:
    conn = _connect(ws)
    try:
        conn.execute(
            f"UPDATE retrains SET {', '.join(f'{k} = ?' for k in fields)} WHERE id = ?", (*fields.values(), rid)
        )
    finally:
        conn.close()


def supersede(ws: Workspace, name: str, rid: int) -> None:
    """An older version still awaiting approval on `name` is superseded by retraining `rid`'s."""
    conn = _connect(ws)
    try:
        conn.execute(
            "UPDATE retrains SET status = ?, message = ? WHERE deployment = ? AND status = ? AND id < ?",
            (SUPERSEDED, f"superseded by retraining #{rid}", name, AWAITING, rid),
        )
    finally:
        conn.close()


def awaiting(ws: Workspace, name: str) -> Retraining | None:
    """The retraining whose version awaits approval on deployment `name`, if any."""
    if not ws.deploy_db.is_file():
        return None
    conn = _connect(ws)
    try:
        row = conn.execute(
            "SELECT * FROM retrains WHERE deployment = ? AND status = ? ORDER BY id DESC LIMIT 1", (name, AWAITING)
        ).fetchone()
    finally:
        conn.close()
    return _row(row) if row is not None else None


def retraining_lock(ws: Workspace, name: str) -> Any:
    """Take deployment `name`'s retraining lock (an open file; closing it, or the process ending, releases it).

    Two retrainings of one deployment at once (a person's and the supervisor's after an alert) would
    each register a version and race to switch; the second is refused instead, naming the first.
    """
    import fcntl  # noqa: PLC0415

    folder = ws.state / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    fh = open(folder / f"retrain-{name}.lock", "a+")  # noqa: SIM115 - held past this function
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        running = [r for r in retrainings(ws, name, limit=5) if r.status == RUNNING]
        which = f" (#{running[-1].id}, {running[-1].trigger})" if running else ""
        raise ConfigError(
            f"a retraining of '{name}' is already running{which}; wait for it to end "
            f"(`aidevops retrains {name}`) before starting another."
        ) from None
    return fh


def retraining_running(ws: Workspace, name: str) -> bool:
    """Whether a retraining of deployment `name` holds its lock now (in any process)."""
    try:
        retraining_lock(ws, name).close()
    except ConfigError:
        return True
    return False


def env_cooldown(default: float = 300.0) -> float:
    """Seconds between automatic retrainings of one deployment (AIDEVOPS_RETRAIN_COOLDOWN overrides)."""
    raw = os.environ.get("AIDEVOPS_RETRAIN_COOLDOWN", "")
    try:
        return max(0.0, float(raw)) if raw else default
    except ValueError:
        return default
