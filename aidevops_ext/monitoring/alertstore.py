"""Alert state and alert history of deployments, in the workspace's `deploy.db` (SQLite, WAL).

Tables (their layout and migrations are in aidevops_ext/db.py):
- `alert_state`: one row per (deployment, rule): the rule's state (ok / firing / resolved), since when,
  the last value and breaching features, and the evaluator's JSON state (what `evaluate_rules` resumes from);
- `alert_events`: every transition (fired / resolved) with its message and the rule's action, and, for
  `action: retrain`, who took it up (`handled_by`) so one alert starts at most one retraining.

The model server's monitor is the only writer of alert state (one evaluator, so a window is never
counted twice); the CLI, notebooks and the retraining loop read it. Standard library and db.py only.

Alert state belongs to the version that served: when another version becomes active (a switch, an
approval, a rollback), its rules start fresh (`state_for_version`), and an alert still firing for the
version that left is closed with a `resolved` event saying why. A retrained model is judged on its own
traffic, never on windows counted against the model it replaced.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .. import db


def _connect(path: Path) -> sqlite3.Connection:
    conn = db.connect(path)
    conn.row_factory = sqlite3.Row
    return conn


class AlertStore:
    """Alert state and events of the deployments of one workspace (short-lived connections)."""

    def __init__(self, db: Path | str) -> None:
        self.path = Path(db)

    def load_state(self, deployment: str) -> dict[str, dict]:
        """The evaluator state by rule name (what `evaluate_rules` takes as previous_state)."""
        if not self.path.is_file():
            return {}
        conn = _connect(self.path)
        try:
            rows = conn.execute("SELECT rule, detail FROM alert_state WHERE deployment = ?", (deployment,)).fetchall()
        finally:
            conn.close()
        return {r["rule"]: json.loads(r["detail"]) for r in rows}

    def state_for_version(self, deployment: str, version: str, now: float) -> tuple[dict[str, dict], list[dict]]:
        """(evaluator state to resume for `version`, `resolved` events closing the alerts that fire for another).

        Rules stored for another version start fresh: they are left out of the state. Rows without a
        version (written before versions were recorded) are resumed as they are."""
        if not self.path.is_file():
            return {}, []
        conn = _connect(self.path)
        try:
            rows = conn.execute(
                "SELECT rule, state, version, detail FROM alert_state WHERE deployment = ?", (deployment,)
            ).fetchall()
        finally:
            conn.close()
        state: dict[str, dict] = {}
        closing: list[dict] = []
        for r in rows:
            if r["version"] is None or str(r["version"]) == str(version):
                state[r["rule"]] = json.loads(r["detail"])
            elif r["state"] == "firing":
                closing.append(
                    {
                        "rule": r["rule"],
                        "event": "resolved",
                        "at": now,
                        "metric": None,
                        "value": None,
                        "threshold": None,
                        "features": [],
                        "action": None,
                        "message": f"{r['rule']} resolved: v{r['version']} no longer serves; the rule starts fresh "
                        f"on v{version}",
                    }
                )
        return state, closing

    def save(
        self,
        deployment: str,
        state: Mapping[str, Mapping[str, Any]],
        events: Iterable[Mapping[str, Any]],
        *,
        model: str | None = None,
        version: str | None = None,
    ) -> list[int]:
        """Store the new state of every rule and the transitions, in one transaction; the events' ids."""
        now = time.time()
        conn = _connect(self.path)
        ids: list[int] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for rule, st in state.items():
                conn.execute(
                    "INSERT INTO alert_state (deployment, rule, state, since, value, features, model, version, detail, updated)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT (deployment, rule) DO UPDATE SET state = excluded.state,"
                    " since = excluded.since, value = excluded.value, features = excluded.features, model = excluded.model,"
                    " version = excluded.version, detail = excluded.detail, updated = excluded.updated",
                    (
                        deployment,
                        rule,
                        st["state"],
                        st["since"],
                        _num(st.get("value")),
                        json.dumps(st.get("features") or []),
                        model,
                        version,
                        json.dumps(st, default=str),
                        now,
                    ),
                )
            conn.execute(
                f"DELETE FROM alert_state WHERE deployment = ? AND rule NOT IN ({','.join('?' * len(state))})",
                (deployment, *state),
            )
            for ev in events:
                cur = conn.execute(
                    "INSERT INTO alert_events (deployment, rule, event, at, metric, value, threshold, features, action,"
                    " message, model, version) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        deployment,
                        ev["rule"],
                        ev["event"],
                        ev["at"],
                        ev.get("metric"),
                        _num(ev.get("value")),
                        _num(ev.get("threshold")),
                        json.dumps(ev.get("features") or []),
                        ev.get("action"),
                        ev["message"],
                        model,
                        version,
                    ),
                )
                ids.append(db.inserted_id(cur))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        finally:
            conn.close()
        return ids

    def states(self, deployment: str | None = None) -> list[dict]:
        """Current state of each rule (of one deployment, or all)."""
        if not self.path.is_file():
            return []
        conn = _connect(self.path)
        try:
            sql = "SELECT deployment, rule, state, since, value, features, model, version, updated FROM alert_state"
            rows = conn.execute(
                sql + (" WHERE deployment = ?" if deployment else "") + " ORDER BY deployment, rule",
                (deployment,) if deployment else (),
            ).fetchall()
        finally:
            conn.close()
        return [dict(r, features=json.loads(r["features"])) for r in rows]

    def events(
        self,
        deployment: str | None = None,
        *,
        after_id: int = 0,
        limit: int = 100,
        action: str | None = None,
        unhandled: bool = False,
    ) -> list[dict]:
        """Alert transitions, newest last."""
        if not self.path.is_file():
            return []
        where = ["id > ?"]
        args: list[int | str] = [int(after_id)]
        if deployment:
            where.append("deployment = ?")
            args.append(deployment)
        if action:
            where.append("action = ? AND event = 'fired'")
            args.append(action)
        if unhandled:
            where.append("handled_by IS NULL")
        conn = _connect(self.path)
        try:
            rows = conn.execute(
                f"SELECT * FROM (SELECT * FROM alert_events WHERE {' AND '.join(where)} ORDER BY id DESC"
                f" LIMIT ?) ORDER BY id",
                (*args, int(limit)),
            ).fetchall()
        finally:
            conn.close()
        return [dict(r, features=json.loads(r["features"])) for r in rows]

    def event(self, event_id: int) -> dict | None:
        """One alert event by id."""
        if not self.path.is_file():
            return None
        conn = _connect(self.path)
        try:
            row = conn.execute("SELECT * FROM alert_events WHERE id = ?", (int(event_id),)).fetchone()
        finally:
            conn.close()
        return dict(row, features=json.loads(row["features"])) if row is not None else None

    def claim(self, event_id: int, by: str) -> bool:
        """Mark a fired event as taken up by `by`; False when someone else already took it (atomic)."""
        conn = _connect(self.path)
        try:
            cur = conn.execute(
                "UPDATE alert_events SET handled_by = ?, handled_at = ? WHERE id = ? AND handled_by IS NULL",
                (by, time.time(), int(event_id)),
            )
            return cur.rowcount == 1
        finally:
            conn.close()


def _num(v: Any) -> float | None:
    try:
        return None if v is None else float(v)
    except (TypeError, ValueError):
        return None
