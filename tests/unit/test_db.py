"""deploy.db: one connect, private to its owner, every table in numbered migrations, older files upgraded in place."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
import threading

import numpy as np
import pytest

from aidevops_ext import db
from aidevops_ext.errors import AidevopsError
from tests.support.imports import modules_loaded_by

EVERY_TABLE = {
    "deployments",
    "deployment_history",
    "alert_state",
    "alert_events",
    "request_log",
    "feedback",
    "retrains",
    "shadow_log",
    "request_rollup",
}

# The layout aidevops wrote before deploy.db was versioned (user_version 0) is migration 1 (db.py); the test below
# pins it to the SCHEMA strings of deploy/store.py, monitoring/alertstore.py, serving/requestlog.py and loop.py at
# f5a1431, so a file such an aidevops left is still recognised as version 1.
OLD_LAYOUT = db.MIGRATIONS[0][1]
# SHA-256 of those SCHEMA strings' statements, comments dropped and white space folded (see _statements_digest).
UNVERSIONED_LAYOUT_SHA256 = "3069edb4acf6523eb2fed83657b8eecf69c08ccb96d9d94a44986badca57f206"

# An older file still: a deployments table without `options`, the request log before DataFrame inputs were
# kept (no `frame`) and before its (model, version, ts) index was replaced, and no alert or retraining tables.
_STORE_PART = OLD_LAYOUT[: OLD_LAYOUT.index("CREATE TABLE IF NOT EXISTS alert_state")].replace(
    "    options TEXT,\n", ""
)
_LOG_PART = OLD_LAYOUT[
    OLD_LAYOUT.index("CREATE TABLE IF NOT EXISTS request_log") : OLD_LAYOUT.index("CREATE TABLE IF NOT EXISTS retrains")
]
_LOG_PART = _LOG_PART.replace("    error TEXT,\n    frame TEXT\n", "    error TEXT\n").replace(
    _LOG_PART[_LOG_PART.index("-- The live window") : _LOG_PART.index("CREATE TABLE IF NOT EXISTS feedback")],
    "CREATE INDEX IF NOT EXISTS request_log_model_ts ON request_log (model, version, ts);\n",
)
OLDER_LAYOUT = _STORE_PART + _LOG_PART


def _statements_digest(sql: str) -> str:
    """SHA-256 of `sql` without its comment lines and with its white space folded: what SQLite executes."""
    statements = " ".join(line for line in sql.splitlines() if not line.strip().startswith("--"))
    return hashlib.sha256(" ".join(statements.split()).encode()).hexdigest()


def test_migration_1_is_still_the_layout_of_an_unversioned_deploy_db():
    assert db.MIGRATIONS[0][0] == 1
    assert _statements_digest(OLD_LAYOUT) == UNVERSIONED_LAYOUT_SHA256


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _layout(path) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY type, name").fetchall()
    finally:
        conn.close()


def _old_db(path, layout: str) -> None:
    """A deploy.db as an unversioned aidevops left it, with one row in each of its tables."""
    conn = sqlite3.connect(path)
    conn.executescript(layout)
    tables = _tables(conn)
    conn.execute(
        "INSERT INTO deployments (name, model, ref, state, admin_token, created, updated) "
        "VALUES ('web', 'm', 'm@champion', 'running', 'tok', 1.0, 2.0)"
    )
    conn.execute(
        "INSERT INTO deployment_history (deployment, ts, operation, to_version, actor) "
        "VALUES ('web', 1.0, 'deploy', '3', 'alice')"
    )
    conn.execute(
        "INSERT INTO request_log (request_id, ts, model, version, protocol, status, latency_ms, n_rows, "
        "n_features, input_rows, row_step, inputs, predictions) "
        "VALUES ('r1', 5.0, 'm', '3', 'mlflow', 200, 1.5, 1, 2, 1, 1, ?, '[7]')",
        (np.array([[1.0, 2.0]], "<f4").tobytes(),),
    )
    conn.execute("INSERT INTO feedback (request_id, row, label, ts) VALUES ('r1', 0, '7', 6.0)")
    if "alert_events" in tables:
        conn.execute(
            "INSERT INTO alert_state (deployment, rule, state, since, detail, updated) "
            "VALUES ('web', 'drift', 'firing', 3.0, '{\"state\": \"firing\"}', 3.0)"
        )
        conn.execute(
            "INSERT INTO alert_events (deployment, rule, event, at, message, action) "
            "VALUES ('web', 'drift', 'fired', 3.0, 'drift above 0.2', 'retrain')"
        )
    if "retrains" in tables:
        conn.execute(
            "INSERT INTO retrains (deployment, model, trigger, status, started) "
            "VALUES ('web', 'm', 'manual', 'switched', 4.0)"
        )
    conn.commit()
    conn.close()


def test_a_fresh_deploy_db_has_every_table_at_the_current_version(tmp_path):
    conn = db.connect(tmp_path / "state" / "deploy.db")  # the folder is created too
    try:
        assert _tables(conn) == EVERY_TABLE
        assert conn.execute("PRAGMA user_version").fetchone()[0] == db.CURRENT == db.MIGRATIONS[-1][0]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == int(db.BUSY_TIMEOUT_S * 1000)
    finally:
        conn.close()


def test_deploy_db_is_created_private_and_a_world_readable_one_is_made_private(tmp_path):
    old_umask = os.umask(0o022)  # what `aidevops serve` ran under when it left deploy.db 0644
    try:
        path = tmp_path / "deploy.db"
        conn = db.connect(path)
        conn.execute("INSERT INTO feedback (request_id, row, label, ts) VALUES ('r', 0, '1', 1.0)")
        for suffix in ("", "-wal", "-shm"):
            assert stat.S_IMODE(os.stat(f"{path}{suffix}").st_mode) == 0o600, suffix
        conn.close()
        legacy = tmp_path / "legacy.db"
        _old_db(legacy, OLD_LAYOUT)
        os.chmod(legacy, 0o644)
        db.connect(legacy).close()
        assert stat.S_IMODE(legacy.stat().st_mode) == 0o600
    finally:
        os.umask(old_umask)


@pytest.mark.parametrize("layout", [OLD_LAYOUT, OLDER_LAYOUT], ids=["as-last-unversioned", "older-partial"])
def test_an_unversioned_deploy_db_is_brought_to_the_current_version_with_its_rows(tmp_path, layout):
    from aidevops_ext.deploy.store import DeployStore
    from aidevops_ext.monitoring.alertstore import AlertStore
    from aidevops_ext.serving.livedata import read_feedback, read_window
    from aidevops_ext.workspace import Workspace

    ws = Workspace(tmp_path)
    ws.state.mkdir()
    _old_db(ws.deploy_db, layout)
    had_alerts = "alert_events" in layout

    conn = db.connect(ws.deploy_db)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == db.CURRENT
        assert _tables(conn) == EVERY_TABLE
        assert {"frame"} <= {r[1] for r in conn.execute("PRAGMA table_info(request_log)")}
        assert {"options"} <= {r[1] for r in conn.execute("PRAGMA table_info(deployments)")}
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert "request_log_model_version_id" in indexes and "request_log_model_ts" not in indexes
    finally:
        conn.close()

    store = DeployStore(ws)
    dep = store.get("web")
    assert (dep.ref, dep.admin_token, dep.target, dep.options) == ("m@champion", "tok", "local", None)
    assert [(h.operation, h.to_version, h.actor) for h in store.history("web")] == [("deploy", "3", "alice")]
    win = read_window(ws.deploy_db, "m", "3", rows=10)
    assert win.rows.tolist() == [[1.0, 2.0]] and win.row_predictions == [7]
    assert read_feedback(ws.deploy_db, "m", first_id=win.first_id, last_id=win.last_id) == [("r1:0", 7, 6.0)]
    events = AlertStore(ws.deploy_db).events("web")
    assert [(e["rule"], e["event"], e["action"]) for e in events] == (
        [("drift", "fired", "retrain")] if had_alerts else []
    )
    store.record("web", "switch", from_version="3", to_version="4", actor="bob", ts=9.0)  # and it takes new rows
    assert [h.to_version for h in store.history("web")] == ["3", "4"]


def test_opening_a_migrated_deploy_db_again_changes_nothing(tmp_path):
    path = tmp_path / "deploy.db"
    _old_db(path, OLD_LAYOUT)
    db.connect(path).close()
    layout = _layout(path)
    ran: list[str] = []
    conn = sqlite3.connect(path, isolation_level=None)
    conn.set_trace_callback(ran.append)
    assert db.migrate(conn) == db.CURRENT  # called directly, it finds nothing to do
    conn.close()
    db.connect(path).close()
    assert _layout(path) == layout
    assert not [s for s in ran if s.lstrip().upper().startswith(("CREATE", "ALTER", "DROP"))], ran


def test_a_deploy_db_from_a_newer_aidevops_is_refused_and_left_as_it_is(tmp_path):
    path = tmp_path / "deploy.db"
    db.connect(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={db.CURRENT + 1}")
    conn.execute("CREATE TABLE from_the_future (x)")
    conn.commit()
    conn.close()
    layout = _layout(path)
    for readonly in (False, True):
        with pytest.raises(AidevopsError) as err:
            db.connect(path, readonly=readonly)
        message = str(err.value)
        assert "newer aidevops" in message and "upgrade aidevops" in message and message.count(". ") == 0
    assert _layout(path) == layout
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == db.CURRENT + 1
    conn.close()


def test_a_database_at_version_n_runs_only_the_later_migrations_all_or_nothing(tmp_path):
    path = tmp_path / "deploy.db"
    db.connect(path).close()
    nxt = db.CURRENT + 1
    broken = (
        *db.MIGRATIONS,
        (
            nxt,
            "CREATE TABLE annotations (id INTEGER PRIMARY KEY, note TEXT);\n"
            "ALTER TABLE deployments ADD COLUMN owner TEXT;\n"
            "ALTER TABLE no_such_table ADD COLUMN x TEXT;\n",
        ),
    )
    with pytest.raises(sqlite3.OperationalError, match="no_such_table"):
        db.connect(path, migrations=broken)
    conn = db.connect(path)  # nothing of the failed migration stayed
    assert conn.execute("PRAGMA user_version").fetchone()[0] == db.CURRENT and "annotations" not in _tables(conn)
    conn.execute(
        "INSERT INTO deployments (name, model, ref, state, created, updated) VALUES ('a', 'm', 'r', 's', 1, 1)"
    )
    conn.close()

    ran: list[str] = []
    later = (
        *db.MIGRATIONS,
        (
            nxt,
            "CREATE TABLE annotations (id INTEGER PRIMARY KEY, note TEXT);\n"
            "ALTER TABLE deployments ADD COLUMN owner TEXT NOT NULL DEFAULT 'nobody';\n",
        ),
    )
    conn = sqlite3.connect(path, isolation_level=None)
    conn.set_trace_callback(ran.append)
    assert db.migrate(conn, later) == nxt
    conn.close()
    assert [s for s in ran if s.lstrip().upper().startswith(("CREATE", "ALTER"))] == [
        "CREATE TABLE annotations (id INTEGER PRIMARY KEY, note TEXT);",
        "ALTER TABLE deployments ADD COLUMN owner TEXT NOT NULL DEFAULT 'nobody';",
    ]
    conn = db.connect(path, migrations=later)
    assert conn.execute("SELECT name, owner FROM deployments").fetchall() == [("a", "nobody")]
    conn.close()


def test_processes_opening_a_new_deploy_db_together_migrate_it_once(tmp_path):
    path = tmp_path / "deploy.db"
    errors: list[BaseException] = []
    go = threading.Barrier(6)

    def open_it() -> None:
        try:
            go.wait()
            db.connect(path).close()
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    conn = db.connect(path, readonly=True)
    assert _tables(conn) == EVERY_TABLE and conn.execute("PRAGMA user_version").fetchone()[0] == db.CURRENT
    conn.close()


def test_readonly_creates_nothing_and_writes_nothing(tmp_path):
    path = tmp_path / "deploy.db"
    with pytest.raises(sqlite3.OperationalError):
        db.connect(path, readonly=True)
    assert not path.exists()
    db.connect(path).close()
    conn = db.connect(path, readonly=True)
    try:
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            conn.execute("INSERT INTO feedback (request_id, row, label, ts) VALUES ('r', 0, '1', 1.0)")
    finally:
        conn.close()


def test_db_imports_nothing_heavy():
    heavy = ("mlflow", "pandas", "numpy", "papermill")
    unrelated = ("aidevops_ext.pipeline", "aidevops_ext.deploy", "aidevops_ext.serving")
    assert modules_loaded_by("import aidevops_ext.db", heavy, unrelated) == []


def test_a_version_1_deploy_db_gains_deployment_columns_keeps_its_rows_and_can_shrink(tmp_path):
    """Migration 2: request_log and feedback name their deployment (a model's only deployment for old rows),
    logged rows carry their size, and the file is converted to incremental vacuum."""
    path = tmp_path / "deploy.db"
    conn = sqlite3.connect(path, isolation_level=None)  # as aidevops at version 1 left it: auto_vacuum off
    assert db.migrate(conn, db.MIGRATIONS[:1]) == 1
    conn.executemany(
        "INSERT INTO deployments (name, model, ref, state, created, updated) VALUES (?, ?, ?, 'running', 1, 1)",
        [("web", "m", "m@champion"), ("blue", "shared", "shared@champion"), ("green", "shared", "shared@champion")],
    )
    blob = np.zeros((2, 4), "<f4").tobytes()
    for i, model in enumerate(["m", "m", "shared", "gone"]):
        conn.execute(
            "INSERT INTO request_log (request_id, ts, model, version, protocol, status, latency_ms, n_rows, "
            "n_features, input_rows, row_step, inputs, predictions) VALUES (?, ?, ?, '1', 'oip', 200, 1, 2, 4, 2, 1, ?, '[0,1]')",
            (f"r{i}", float(i), model, blob),
        )
    conn.execute("INSERT INTO feedback (request_id, row, label, ts) VALUES ('r0', 1, '1', 9.0)")
    conn.execute("INSERT INTO feedback (request_id, row, label, ts) VALUES ('nobody', 0, '1', 9.0)")
    conn.close()

    conn = db.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == db.CURRENT >= 2
        logged = conn.execute(
            "SELECT request_id, model, deployment, size_bytes FROM request_log ORDER BY id"
        ).fetchall()
        size = 320 + len(blob) + len("[0,1]")
        # one deployment of m: its rows are web's; shared has two (whose? unknown: NULL); gone has none
        assert logged == [
            ("r0", "m", "web", size),
            ("r1", "m", "web", size),
            ("r2", "shared", None, size),
            ("r3", "gone", None, size),
        ]
        labels = conn.execute("SELECT request_id, row, label, deployment FROM feedback ORDER BY id").fetchall()
        assert labels == [("r0", 1, "1", "web"), ("nobody", 0, "1", None)]
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental: compaction can shrink the file
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {
            "request_log_deployment_version_id",
            "request_log_deployment_time",
            "feedback_deployment_time",
        } <= indexes
    finally:
        conn.close()


def test_a_new_deploy_db_is_created_with_incremental_vacuum_and_a_bounded_wal(tmp_path):
    conn = db.connect(tmp_path / "deploy.db")
    try:
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
        assert conn.execute("PRAGMA journal_size_limit").fetchone()[0] == db.WAL_SIZE_LIMIT_BYTES
    finally:
        conn.close()
