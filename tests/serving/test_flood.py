"""A flood of maximum-rate predictions and labels against a real deployment server on 127.0.0.1 leaves
deploy.db within the bound its `monitor: retention` sets (file size with -wal and -shm, sampled throughout).

The server is the deployment child process (as `aidevops deploy` runs it) with the compactor every second.
No timing is asserted: benchmarks/flood.py measures serving p99 with and without the same flood.
"""

from __future__ import annotations

import sqlite3
import time

import pytest

from aidevops_ext.db import WAL_SIZE_LIMIT_BYTES
from benchmarks.flood import Flood, make_deployment

MB = 1024 * 1024
RETENTION = {"max_rows": 1000, "max_age_days": 1, "max_mb": 1}
ROUND_SECONDS = 10  # the flood runs in rounds until it has sent enough: a loaded machine floods slower
MAX_SECONDS = 180
LABEL_ROW_BYTES = 100


@pytest.fixture
def flood(tmp_path):
    make_deployment(tmp_path, RETENTION)
    f = Flood(tmp_path, compact_seconds=1.0)
    f.start()
    yield f
    f.stop()


def logged_bytes_per_request(flood) -> float:
    """What one 100-row request adds to the log, measured before the flood: when the server sheds load, the
    log left after the flood can be empty, and it cannot tell how much the flood sent."""
    flood.flood(1, concurrency=1, batch=100)
    deadline = time.monotonic() + 30  # the log writer commits in batches, behind the answers
    while (counts := flood.counts())["request_log"] == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert counts["request_log"] > 0, counts
    return counts["logged_bytes"] / counts["request_log"]


def flood_until(flood, enough_bytes: float, per_request: float) -> tuple[dict, float]:
    """Flood round after round until `enough_bytes` were sent (or MAX_SECONDS passed). Returns the summed counts,
    with every sampled size and the fastest round's predictions a second, and the bytes sent."""
    done: dict = {"predictions": 0, "labels": 0, "errors": 0, "sizes": [], "per_second": 0.0}
    start = time.monotonic()
    while True:
        one = flood.flood(ROUND_SECONDS, concurrency=8, batch=100)
        for key in ("predictions", "labels", "errors"):
            done[key] += one[key]
        done["sizes"] += one["sizes"]
        done["per_second"] = max(done["per_second"], one["predictions"] / ROUND_SECONDS)
        sent = done["predictions"] * per_request + done["labels"] * LABEL_ROW_BYTES
        if sent > enough_bytes or time.monotonic() - start > MAX_SECONDS:
            return done, sent


def test_a_flood_of_predictions_and_labels_keeps_deploy_db_within_its_retention(flood):
    # The flood sends far more than the retention keeps, so only compaction keeps the file small: a pass
    # starts once a tenth of a budget was written, so the file holds the budgets, their indexes and page
    # slack, and what arrives during one pass. The WAL is checkpointed at about WAL_SIZE_LIMIT_BYTES and cut
    # back to it; a checkpoint waits while a pass's delete transaction runs, so between two checkpoints the WAL
    # grows by at most two more such stretches of writes.
    db_bound = 2 * RETENTION["max_mb"] * MB + 2 * MB
    bound = db_bound + 3 * WAL_SIZE_LIMIT_BYTES
    per_request = logged_bytes_per_request(flood)
    done, sent = flood_until(flood, 2 * bound, per_request)
    assert done["predictions"] > 0 and done["labels"] > 0, done
    # every prediction answered 200; a label body 200, or 503 (Retry-After) while a whole budget waits for the
    # compactor's next pass, or 422 for a request whose log entry was dropped then: no other answer
    assert done["errors"] == 0, done
    with sqlite3.connect(f"file:{flood.db}?mode=ro", uri=True) as conn:
        rows, logged = conn.execute("SELECT count(*), COALESCE(SUM(size_bytes), 0) FROM request_log").fetchone()
        labels = conn.execute("SELECT count(*) FROM feedback").fetchone()[0]
        deployments = {r[0] for r in conn.execute("SELECT DISTINCT deployment FROM request_log")}

    assert sent > 2 * bound, f"the flood was too small to test the bound in {MAX_SECONDS} s: {done}"
    largest = max(done["sizes"])
    assert largest <= bound, f"deploy.db grew to {largest / MB:.1f} MB (bound {bound / MB:.1f} MB): {done['sizes']}"
    assert flood.db.stat().st_size <= db_bound

    # what is kept: the budgets, plus at most the writes of the compaction pass that is due (a second's)
    per_second = done["per_second"] + 1
    assert rows <= RETENTION["max_rows"] + 2 * per_second
    assert logged <= RETENTION["max_mb"] * MB + 2 * per_second * per_request
    assert labels <= RETENTION["max_rows"] + 2 * per_second * 100
    assert deployments == {"flood"}
