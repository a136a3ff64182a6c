"""Request rollups (serving/rollups.py): what the writer folds into them equals what the raw rows give, the chart
read from them equals the raw computation on the same data, an older deploy.db gets them backfilled, and a
request logged now is on the chart now."""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections import defaultdict

import numpy as np
import pytest

from aidevops_ext import db as deploydb
from aidevops_ext.deploy import manager, observe
from aidevops_ext.deploy.store import Deployment
from aidevops_ext.monitoring.rules import Retention
from aidevops_ext.monitoring.series import request_series as raw_series
from aidevops_ext.serving import ServingConfig, rollups
from aidevops_ext.serving.compaction import Compactor
from aidevops_ext.serving.livedata import logged_rows
from aidevops_ext.serving.requestlog import RequestLog
from aidevops_ext.workspace import Workspace
from benchmarks import panel_api

BIN_RATIO = 2 ** (1 / 4)  # one histogram bin (db.LATENCY_EDGES_MS)
ROLLUP_COLUMNS = (
    "deployment, bucket, model, version, requests, errors, refused, input_rows, latency_sum_ms, latency_min_ms, "
    "latency_max_ms, latency_bins, classes, last_id"
)


def _traffic(db, n, *, seed=0, t0=None, span=600.0, deployment="web", batches=4):
    """Log `n` random requests over `span` seconds through the request-log writer, in `batches` flushes (so later
    batches add to buckets earlier ones began): two versions, 4xx and 5xx, heavy-tailed latencies."""
    rng = np.random.default_rng(seed)
    t0 = time.time() - span if t0 is None else t0
    log = RequestLog(db, ServingConfig(log_flush_seconds=0.05))
    log.bind(deployment)
    ts = np.sort(rng.uniform(t0, t0 + span, n))
    lat = rng.lognormal(0.5, 1.2, n)
    status = rng.choice([200, 200, 200, 200, 200, 200, 400, 500], n)
    versions = rng.choice(["1", "2"], n)
    sizes = rng.choice([1, 1, 1, 7], n)
    for part in np.array_split(np.arange(n), batches):
        for i in part:
            X = np.ones((int(sizes[i]), 2), np.float32)
            preds = rng.integers(0, 3, int(sizes[i])) if status[i] == 200 else None
            log.offer(
                (f"r{seed}-{i}", float(ts[i]), "abc", str(versions[i]), None, "mlflow", int(status[i]), float(lat[i]))
                + (X if status[i] == 200 else None, preds, None if status[i] == 200 else "bad")
            )
        log.flush()
    return ts, lat, status


def _rollups(db):
    with sqlite3.connect(db) as conn:
        return conn.execute(f"SELECT {ROLLUP_COLUMNS} FROM request_rollup ORDER BY 1, 2, 3, 4").fetchall()


def _assert_rollups_are_the_rows(db, deployment, *, at_least):
    """Every rollup of `db` holds what its bucket's raw request_log rows give (one deployment, model abc)."""
    with sqlite3.connect(db) as conn:
        raw = conn.execute(
            "SELECT id, ts, version, status, latency_ms, input_rows, predictions FROM request_log"
        ).fetchall()
    expect: dict[tuple, list] = defaultdict(list)
    for rec in raw:
        expect[(int(rec[1] // 5) * 5, rec[2])].append(rec)
    got = _rollups(db)
    assert len(got) == len(expect) > at_least
    for dep, bucket, model, version, n, errors, refused, rows, lat_sum, lo, hi, bins, classes, last in got:
        recs = expect[(bucket, version)]
        lat = np.array([r[4] for r in recs])
        assert (dep, model, n) == (deployment, "abc", len(recs))
        assert errors == sum(r[3] >= 500 for r in recs) and refused == sum(r[3] == 400 for r in recs)
        assert rows == sum(r[5] or 0 for r in recs if r[3] == 200) and last == max(r[0] for r in recs)
        assert lat_sum == pytest.approx(lat.sum()) and (lo, hi) == (lat.min(), lat.max())
        hist = rollups.parse_bins(bins)
        assert hist == dict(zip(*np.unique(rollups.latency_bins(lat), return_counts=True))), "every latency in its bin"
        labels: dict[str, int] = defaultdict(int)
        for r in recs:
            for p in json.loads(r[6]) if r[6] else []:
                labels[str(p)] += 1
        assert (json.loads(classes) if classes else {}) == labels
        counts = np.zeros((1, rollups.N_BINS), np.int64)
        for b, c in hist.items():
            counts[0, b] = c
        for q in (50, 95, 99):
            estimate = rollups.percentile_from_bins(counts, np.array([lo]), np.array([hi]), q)[0]
            exact = float(np.percentile(lat, q))
            assert exact / BIN_RATIO <= estimate <= exact * BIN_RATIO, (q, estimate, exact)


def test_rollups_equal_what_the_raw_rows_give_over_random_traffic(tmp_path):
    db = tmp_path / "deploy.db"
    _traffic(db, 3000, seed=1)
    _assert_rollups_are_the_rows(db, "web", at_least=100)


def test_the_panel_benchmarks_grown_log_has_the_rollups_of_its_copied_rows_and_ids_in_time_order(tmp_path):
    db = tmp_path / "deploy.db"
    ts, _lat, _status = _traffic(db, 400, seed=5, deployment=panel_api.NAME)
    end = math.floor(ts.min() / 5) * 5
    panel_api.make_room(db, 3000 + 2000 - 400)  # as the benchmark lays out 5,000 requests: a week's 3,000 first
    assert panel_api.grow_log(db, 2000, end, 600.0, "hour", first_id=3001)[0] == 2000
    assert panel_api.grow_log(db, 5000, end - 600.0, 1800.0, "week", first_id=1)[0] == 5000
    _assert_rollups_are_the_rows(db, panel_api.NAME, at_least=300)
    with sqlite3.connect(db) as conn:
        ids = [i for (i,) in conn.execute("SELECT id FROM request_log ORDER BY ts, id")]
    assert ids == list(range(1, 5001)), "the newest requests have the newest ids"


def test_series_from_rollups_equals_the_raw_computation_on_the_same_data(tmp_path):
    db = tmp_path / "deploy.db"
    now = time.time()
    ts, lat, status = _traffic(db, 4000, seed=2, t0=now - 3000, span=3000)
    for minutes, buckets in ((60, 60), (10, 120), (10, 30), (50, 7)):
        start, stop, width = rollups.chart_range(now, minutes, buckets)
        assert width % 5 == 0 and stop > now and stop - now <= 5 and width * buckets >= minutes * 60
        conn = deploydb.connect(db)
        try:
            ours = rollups.request_series(conn, "abc", start=start, width=width, buckets=buckets, deployment="web")
        finally:
            conn.close()
        old = raw_series(ts, lat, status, buckets=buckets, start=start, end=stop)
        for key in ("t", "requests", "rate", "errors_per_s", "error_rate", "bucket_s"):
            assert ours[key] == pytest.approx(old[key]), key
        assert sum(ours["requests"]) == int(((ts >= start) & (ts < stop)).sum())
        for key in ("p50_ms", "p95_ms", "p99_ms"):
            for mine, exact in zip(ours[key], old[key]):
                assert (mine is None) == (exact is None)
                if exact is not None:
                    assert exact / BIN_RATIO <= mine <= exact * BIN_RATIO, (key, mine, exact)


def test_a_deploy_db_without_rollups_gets_them_backfilled_by_its_migration(tmp_path):
    written, old = tmp_path / "written.db", tmp_path / "old.db"
    _traffic(written, 1500, seed=3)
    cols = "request_id, ts, model, version, protocol, status, latency_ms, input_rows, predictions, deployment"
    before = [m for m in deploydb.MIGRATIONS if m[0] < 4]
    deploydb.connect(old, migrations=before).close()  # a file from before rollups
    with sqlite3.connect(written) as src, sqlite3.connect(old) as dst:
        dst.executemany(
            f"INSERT INTO request_log (id, {cols}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            src.execute(f"SELECT id, {cols} FROM request_log"),
        )
    deploydb.connect(old).close()  # migrates
    want, got = _rollups(written), _rollups(old)
    assert len(got) == len(want) > 50
    for a, b in zip(got, want):
        assert a[:8] == b[:8] and a[13] == b[13] and a[9:11] == b[9:11]
        assert a[8] == pytest.approx(b[8]) and rollups.parse_bins(a[11]) == rollups.parse_bins(b[11])
        assert a[12] is None, "classes are counted from new traffic only"


def test_a_request_logged_now_is_in_the_current_bucket_of_the_chart(tmp_path, monkeypatch):
    ws = Workspace(tmp_path)
    log = RequestLog(ws.deploy_db, ServingConfig(log_flush_seconds=0.05))
    log.bind("live")
    now = time.time()
    log.offer(("now-1", now, "abc", "3", None, "mlflow", 200, 4.2, np.ones((1, 2), np.float32), np.array([1]), None))
    log.flush()
    dep = Deployment(name="live", model="abc", ref="abc@champion", state="running", created=now, updated=now)
    monkeypatch.setattr(manager, "get", lambda _ws, _name: dep)
    series = observe.series(ws, "live", minutes=10, buckets=120, now=now)
    req = series["requests"]
    assert req["requests"][-1] == 1 and sum(req["requests"]) == 1 and len(req["t"]) == 120
    assert req["t"][-1] <= now < series["end"] and req["p50_ms"][-1] == pytest.approx(4.2)
    assert series["end"] - series["start"] == 600 and req["bucket_s"] == 5
    assert req["rate"][-1] == pytest.approx(1 / max(now - req["t"][-1], 1.0)), "the current bucket: its rate so far"


def test_window_counts_and_retention_read_rollups_not_rows(tmp_path):
    db = tmp_path / "deploy.db"
    day = 86400.0
    _traffic(db, 400, seed=4, t0=time.time() - 20 * day, span=19 * day)
    with sqlite3.connect(db) as conn:
        answered = conn.execute(
            "SELECT COALESCE(sum(input_rows), 0), max(id) FROM request_log WHERE version = '1' AND status = 200"
        ).fetchone()
        newest = conn.execute("SELECT max(id) FROM request_log WHERE version = '1'").fetchone()[0]
    assert logged_rows(db, "abc", "1", deployment="web") == (answered[0], newest)
    result = Compactor(db, "web", Retention(max_age_days=2)).compact()
    kept = _rollups(db)
    assert result.requests > 0 and result.rollups > 0 and kept
    cutoff = time.time() - rollups.KEEP_SECONDS
    assert all(r[1] + 5 > cutoff - 5 for r in kept), "rollups outlive raw rows for the longest chart, then go"
    with sqlite3.connect(db) as conn:
        raw_oldest = conn.execute("SELECT min(ts) FROM request_log").fetchone()[0]
    assert min(r[1] for r in kept) < raw_oldest - day
    assert math.isfinite(sum(r[8] for r in kept))
