"""deploy.db: WAL, private to its owner, shared with the server's request log, history kept once per event."""

from __future__ import annotations

import sqlite3
import stat
import time

from aidevops_ext.deploy.store import Deployment, DeployStore
from aidevops_ext.deploy.versions import Target, parse_target, parse_version
from aidevops_ext.workspace import Workspace


def _dep(name: str = "m", **kw) -> Deployment:
    now = time.time()
    return Deployment(
        name=name,
        model="m",
        ref="m@champion",
        state="running",
        created=now,
        updated=now,
        admin_token="s3cret-token",
        **kw,
    )


def test_wal_private_and_shared_with_the_request_log(tmp_path):
    from aidevops_ext.serving.requestlog import connect as requestlog_connect

    ws = Workspace(tmp_path)
    rl = requestlog_connect(ws.deploy_db)  # the server may create the file first, with default permissions
    rl.close()
    store = DeployStore(ws)
    store.put(_dep())
    assert stat.S_IMODE(ws.deploy_db.stat().st_mode) == 0o600
    conn = sqlite3.connect(ws.deploy_db)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"deployments", "deployment_history", "request_log", "feedback"} <= tables
    conn.close()
    requestlog_connect(ws.deploy_db).close()  # and the request log still opens it
    assert store.get("m").admin_token == "s3cret-token"


def test_token_stays_out_of_views(tmp_path):
    dep = _dep(port=8123, host="0.0.0.0")
    assert "s3cret" not in repr(dep) and "admin_token" not in dep.to_dict()
    assert dep.to_dict()["url"] == "http://127.0.0.1:8123"


def test_history_rows_and_dedup(tmp_path):
    store = DeployStore(Workspace(tmp_path))
    a = store.record("m", "deploy", to_version="1", reason="first", actor="alice", ts=1000.0)
    store.record("m", "deploy", to_version="1", reason="first", actor="alice", ts=1000.0)  # same event again
    store.record(
        "m",
        "switch",
        from_version="1",
        to_version="2",
        reason="better",
        actor="bob",
        ok=False,
        detail="refused",
        ts=1001.0,
    )
    store.record("other", "deploy", to_version="7", ts=999.0)
    rows = store.history("m")
    assert [(h.operation, h.from_version, h.to_version, h.actor, h.ok) for h in rows] == [
        ("deploy", None, "1", "alice", True),
        ("switch", "1", "2", "bob", False),
    ]
    assert a.to_dict()["when"].startswith("1970-01-01")
    assert [h.deployment for h in store.history()] == ["other", "m", "m"]


def test_update_changes_only_named_columns(tmp_path):
    store = DeployStore(Workspace(tmp_path))
    store.put(_dep(active_version="1"))
    store.update("m", active_version="2", previous_version="1")
    dep = store.get("m")
    assert (dep.active_version, dep.previous_version, dep.ref, dep.admin_token) == (
        "2",
        "1",
        "m@champion",
        "s3cret-token",
    )
    try:
        store.update("m", nope=1)
    except KeyError as exc:
        assert "nope" in str(exc)
    else:
        raise AssertionError("unknown column accepted")


def test_model_references():
    assert parse_target("digits@champion") == Target("digits", alias="champion")
    assert parse_target("models:/digits/3") == Target("digits", version="3")
    assert parse_target("digits/v3") == Target("digits", version="3")
    assert parse_target("digits") == Target("digits", alias="champion")
    assert parse_version("v12") == "12"
    for bad in ("", "a b", "x@", "x/y", "../etc/passwd", "x@a;b", "-rf"):
        try:
            parse_target(bad)
        except Exception as exc:  # noqa: BLE001
            assert "is not a model reference" in str(exc)
        else:
            raise AssertionError(f"accepted {bad!r}")
