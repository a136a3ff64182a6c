"""Bounded storage: the request log and labels carry their deployment, and the compactor keeps each
deployment's rows within the `monitor: retention` of its spec (rows, age, size), oldest first."""

from __future__ import annotations

import sqlite3
import time

import numpy as np
import pytest

from aidevops_ext import db as deploydb
from aidevops_ext.errors import ConfigError
from aidevops_ext.monitoring.rules import Retention, parse_monitor
from aidevops_ext.serving import ServingConfig
from aidevops_ext.serving.compaction import BATCH_ROWS, Compactor
from aidevops_ext.serving.livedata import logged_rows, read_feedback, read_requests, read_window
from aidevops_ext.serving.requestlog import LabelsDeferred, RequestLog


def _log(
    db, deployment, n, *, prefix=None, ts0=None, step=1.0, features=3, rows_per_request=1, model="abc", version="1"
):
    """Log `n` requests for `deployment` (oldest first, `step` seconds apart); their request ids."""
    log = RequestLog(db, ServingConfig(log_flush_seconds=0.05))
    log.bind(deployment)
    ts0 = time.time() - n * step if ts0 is None else ts0
    X = np.arange(rows_per_request * features, dtype=np.float32).reshape(rows_per_request, features)
    rids = [f"{prefix or deployment}-{i}" for i in range(n)]
    for i, rid in enumerate(rids):
        preds = [i % 3] * rows_per_request
        log.offer((rid, ts0 + i * step, model, version, None, "mlflow", 200, 1.0, X, preds, None))
    log.flush()
    return rids


def _label(db, deployment, rows):
    """Store labels [(request_id, row, label)] as `deployment`'s server does; how many were stored."""
    log = RequestLog(db, ServingConfig())
    log.bind(deployment)
    written, _refused = log.write_feedback(rows, ["abc"])
    return written


def _count(db, sql, *args):
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, args).fetchone()[0]


def test_logged_rows_and_labels_carry_the_deployment_whose_server_wrote_them(tmp_path):
    db = tmp_path / "deploy.db"
    rids = _log(db, "web", 3)
    assert _label(db, "web", [(rids[0], 0, 1)]) == 1
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT DISTINCT deployment FROM request_log").fetchall() == [("web",)]
        assert conn.execute("SELECT deployment FROM feedback").fetchall() == [("web",)]
        sizes = [r[0] for r in conn.execute("SELECT size_bytes FROM request_log")]
    assert all(s > 3 * 4 for s in sizes)  # at least the logged float32 inputs


def test_two_deployments_of_one_model_keep_their_own_window_labels_and_charts(tmp_path, app_factory):
    db = tmp_path / "deploy.db"
    blue = _log(db, "blue", 40)
    _log(db, "green", 10)
    assert _label(db, "blue", [(rid, 0, 0) for rid in blue[:5]]) == 5

    assert read_window(db, "abc", "1", rows=1000, deployment="blue").n_rows == 40
    assert read_window(db, "abc", "1", rows=1000, deployment="green").n_rows == 10
    assert read_window(db, "abc", "1", rows=1000).n_rows == 50  # no deployment named: the model's rows
    assert logged_rows(db, "abc", "1", deployment="green")[0] == 10
    assert read_requests(db, "abc", deployment="green")["ts"].size == 10
    win = read_window(db, "abc", "1", rows=1000, deployment="green")
    assert read_feedback(db, "abc", first_id=1, last_id=10**9, deployment="green") == []
    assert len(read_feedback(db, "abc", first_id=1, last_id=10**9, deployment="blue")) == 5
    assert win.row_ids[0].startswith("green-")

    # the live monitor of each deployment's server sees its own traffic only
    summary = {name: app_factory(db=db, deployment=name).state.server.monitor.refresh() for name in ("blue", "green")}
    assert summary["blue"]["logged_rows"] == 40 and summary["green"]["logged_rows"] == 10


def test_requests_past_max_rows_go_oldest_first_and_other_deployments_keep_theirs(tmp_path):
    db = tmp_path / "deploy.db"
    rids = _log(db, "web", 3 * BATCH_ROWS + 7)  # several delete batches
    _log(db, "other", 50)
    conn = deploydb.connect(db)
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    result = Compactor(db, "web", Retention(max_rows=BATCH_ROWS)).compact(conn)
    conn.close()
    assert result.requests == 2 * BATCH_ROWS + 7
    # in small transactions, so the request-log writer and /feedback get the write lock in between
    assert sum(s.startswith("DELETE FROM request_log") for s in statements) == 3
    assert not any(s.startswith("BEGIN") for s in statements)  # each DELETE commits on its own
    kept = [r[0] for r in sqlite3.connect(db).execute("SELECT request_id FROM request_log WHERE deployment = 'web'")]
    assert sorted(kept) == sorted(rids[-BATCH_ROWS:])
    assert _count(db, "SELECT count(*) FROM request_log WHERE deployment = 'other'") == 50


def test_requests_and_labels_older_than_max_age_go(tmp_path):
    db = tmp_path / "deploy.db"
    now = time.time()
    old = _log(db, "web", 20, prefix="old", ts0=now - 3 * 86400, step=60)  # three days ago
    new = _log(db, "web", 20, ts0=now - 600, step=1)
    assert _label(db, "web", [(old[0], 0, 1), (new[0], 0, 1)]) == 2
    with sqlite3.connect(db) as conn:  # the old label was given back then
        conn.execute("UPDATE feedback SET ts = ? WHERE request_id = ?", (now - 3 * 86400, old[0]))
    result = Compactor(db, "web", Retention(max_age_days=2)).compact(now=now)
    assert (result.requests, result.feedback) == (20, 1)
    assert {r[0] for r in sqlite3.connect(db).execute("SELECT request_id FROM request_log")} == set(new)
    assert _count(db, "SELECT count(*) FROM feedback WHERE request_id = ?", new[0]) == 1


def test_the_size_budget_bounds_requests_whose_logged_inputs_are_big(tmp_path):
    db = tmp_path / "deploy.db"
    _log(db, "web", 200, features=64, rows_per_request=100)  # ~26 KB each: 200 rows are ~5 MB
    budget = Retention(max_rows=100_000, max_mb=1.0)
    Compactor(db, "web", budget).compact()
    kept = _count(db, "SELECT SUM(size_bytes) FROM request_log")
    assert 0 < kept <= budget.max_bytes
    assert kept > budget.max_bytes - 30_000  # the newest rows that fit are kept, not fewer


def test_labels_past_max_rows_go_oldest_first(tmp_path):
    db = tmp_path / "deploy.db"
    rids = _log(db, "web", 10, rows_per_request=150)
    for r in range(3):  # three rounds of labels, a little apart
        assert _label(db, "web", [(rid, row, 1) for rid in rids for row in range(50 * r, 50 * r + 50)]) == 500
        time.sleep(0.01)
    Compactor(db, "web", Retention(max_rows=1000)).compact()
    assert _count(db, "SELECT count(*) FROM feedback") == 1000
    assert _count(db, "SELECT min(row) FROM feedback") == 50  # the first round went first


def test_compaction_gives_freed_pages_back_so_the_file_shrinks(tmp_path):
    db = tmp_path / "deploy.db"
    _log(db, "web", 1000, features=64, rows_per_request=20)  # ~5 MB
    conn = deploydb.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = db.stat().st_size
    result = Compactor(db, "web", Retention(max_rows=100)).compact(conn)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    assert result.pages_freed > 0
    assert db.stat().st_size < before / 5


def test_a_running_request_log_compacts_in_the_background(tmp_path, monkeypatch):
    monkeypatch.setenv("AIDEVOPS_COMPACT_SECONDS", "0.05")
    db = tmp_path / "deploy.db"
    log = RequestLog(db, ServingConfig(log_flush_seconds=0.02))
    log.bind("web", Retention(max_rows=100))
    log.start()
    try:
        X = np.zeros((1, 3), np.float32)
        for i in range(1000):
            log.offer((f"r{i}", time.time(), "abc", "1", None, "mlflow", 200, 1.0, X, [0], None))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (
            log.written == 1000 and _count(db, "SELECT count(*) FROM request_log") <= 100
        ):
            time.sleep(0.05)
    finally:
        log.stop()
    # at most the newest 100 (rows logged in the same microsecond as the 101st go with it)
    assert log.written == 1000 and 90 <= _count(db, "SELECT count(*) FROM request_log") <= 100


@pytest.mark.parametrize(
    ("retention", "says"),
    [
        ({"max_row": 10}, "did you mean 'max_rows'"),
        ({"max_rows": 5}, "max_rows must be an integer >= 100"),
        ({"max_age_days": 0}, "max_age_days must be a finite number"),
        ({"max_mb": "1G"}, "max_mb must be a finite number"),
        ([1, 2], "retention must be a mapping"),
        ({"max_rows": 400}, "retention max_rows (400) is below window (500 rows)"),
    ],
)
def test_bad_retention_settings_are_refused_in_one_sentence(retention, says):
    with pytest.raises(ConfigError) as err:
        parse_monitor({"window": 500, "retention": retention})
    message = str(err.value)
    assert says in message and message.startswith("monitor: retention") and message.count(". ") == 0


def test_retention_defaults_and_spec_values():
    assert parse_monitor(None).retention == Retention(max_rows=100_000, max_age_days=30.0, max_mb=256.0)
    got = parse_monitor({"retention": {"max_rows": 1_000_000, "max_age_days": 7}}).retention
    assert (got.max_rows, got.max_age_days, got.max_mb) == (1_000_000, 7.0, 256.0)


def _log_with_compactor(db, retention):
    """A request log bound to `web` with a compactor that never runs a pass by itself (its budgets are counted)."""
    log = RequestLog(db, ServingConfig())
    log.bind("web", retention)
    log.compactor = Compactor(db, "web", retention, interval=3600)
    return log


def _offer(log, rid):
    log.offer((rid, time.time(), "abc", "1", None, "mlflow", 200, 1.0, np.zeros((2, 3), np.float32), [0, 1], None))


def test_a_label_for_a_request_still_in_the_queue_is_kept_and_its_request_written_first(tmp_path):
    db = tmp_path / "deploy.db"
    log = _log_with_compactor(db, Retention(max_rows=100))
    _offer(log, "fresh")  # answered a moment ago: not written yet
    assert log.write_feedback([("fresh", 1, 1)], ["abc"]) == (1, {})
    assert _count(db, "SELECT count(*) FROM request_log WHERE request_id = 'fresh'") == 1
    assert _count(db, "SELECT count(*) FROM feedback WHERE request_id = 'fresh'") == 1


def test_a_label_for_a_request_dropped_while_the_log_is_over_its_retention_is_refused(tmp_path):
    db = tmp_path / "deploy.db"
    log = _log_with_compactor(db, Retention(max_rows=100))
    log.compactor.written(requests=101)  # a whole budget since the last pass: the writer drops entries
    _offer(log, "shed")
    assert log.write_feedback([("shed", 0, 1)], ["abc"]) == (0, {"unknown": 1})
    assert _count(db, "SELECT count(*) FROM request_log") == 0
    assert _count(db, "SELECT count(*) FROM feedback") == 0  # no label names a request the log does not hold


def test_a_flood_of_labels_defers_labels_but_the_request_log_keeps_writing(tmp_path):
    db = tmp_path / "deploy.db"
    log = _log_with_compactor(db, Retention(max_rows=100))
    log.compactor.written(labels=101)  # a whole label budget since the last pass
    _offer(log, "seen")
    log.flush()
    assert _count(db, "SELECT count(*) FROM request_log WHERE request_id = 'seen'") == 1  # monitoring still sees it
    with pytest.raises(LabelsDeferred):
        log.write_feedback([("seen", 0, 1)], ["abc"])
    assert _count(db, "SELECT count(*) FROM feedback") == 0


def test_a_label_check_probes_the_request_id_index_instead_of_walking_the_deployments_log(tmp_path):
    from aidevops_ext.serving.labels import known_ids

    db = tmp_path / "deploy.db"
    rids = _log(db, "web", 50)
    statements: list[str] = []
    with deploydb.connect(db) as conn:
        conn.set_trace_callback(statements.append)
        assert known_ids(conn, rids[:2], ["abc"], "web") == {rids[0]: 1, rids[1]: 1}
        conn.set_trace_callback(None)
        lookup = next(s for s in statements if "FROM request_log" in s)
        plan = " ".join(row[-1] for row in conn.execute("EXPLAIN QUERY PLAN " + lookup))
    # each label body's check costs one probe per id, whatever the retention keeps
    assert "request_log_request_id" in plan, plan
