"""Retention of the request log and the feedback labels in deploy.db: a background thread in the model server.

Every `interval` seconds (AIDEVOPS_COMPACT_SECONDS, default 30) the compactor of a server deletes the rows
of its own deployment that its `Retention` (the `monitor:` section's `retention`) no longer keeps:
- request log: rows older than `max_age_days`, past the newest `max_rows`, and past `max_mb` of their
  `size_bytes` (summed newest first over the (deployment, ts, size_bytes) index; rows are not read);
- feedback: labels older than `max_age_days` and past the newest `max_rows`.
- request rollups (serving/rollups.py): older than a week and a day, or `max_age_days` when longer.

Serving is never stalled: the compactor runs in its own thread with its own connection and never touches
the event loop. Writers are never blocked long: rows go in batches of `BATCH_ROWS` picked by id, each
batch its own short transaction, with a pause between batches so the request-log writer and `/feedback`
take the lock in between (WAL: readers are not blocked at all). Freed pages go back to the file system in
steps of `VACUUM_PAGES` (`PRAGMA incremental_vacuum`, on since migration 2 of db.py), and a passive
checkpoint lets the -wal file shrink to db.py's journal size limit, so the file shrinks after a flood too.

A server with no deployment name (a plain `aidevops serve`) keeps the rows that have none.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..db import bound_wal, connect
from ..errors import AidevopsError
from ..monitoring.rules import Retention
from . import rollups

log = logging.getLogger("aidevops.serving")

COMPACT_SECONDS_ENV = "AIDEVOPS_COMPACT_SECONDS"
DEFAULT_INTERVAL_S = 30.0
BATCH_ROWS = 500  # rows per delete transaction: a few milliseconds of the write lock
PAUSE_S = 0.002  # between two batches: the other writers' turn
MIN_GAP_S = 0.25  # between the end of one pass and the start of the next
VACUUM_PAGES = 512  # pages (2 MB at 4 KB) handed back to the file system per transaction


@dataclass
class PassResult:
    """What one compaction pass deleted and gave back."""

    requests: int = 0
    feedback: int = 0
    rollups: int = 0
    pages_freed: int = 0
    seconds: float = 0.0


def compact_interval() -> float:
    """Seconds between two passes: AIDEVOPS_COMPACT_SECONDS, else the default; a bad value is the default, logged."""
    raw = os.environ.get(COMPACT_SECONDS_ENV, "").strip()
    if not raw:
        return DEFAULT_INTERVAL_S
    try:
        value = float(raw)
        if value > 0:
            return value
    except ValueError:
        pass
    log.warning(
        "%s=%r is not a positive number of seconds; compacting every %gs", COMPACT_SECONDS_ENV, raw, DEFAULT_INTERVAL_S
    )
    return DEFAULT_INTERVAL_S


class Compactor:
    """Keeps one deployment's request log and labels within its retention; `start`/`stop` run it in a thread."""

    def __init__(
        self, path: Path | str, deployment: str | None, retention: Retention, *, interval: float | None = None
    ) -> None:
        self.path = Path(path)
        self.deployment = deployment
        self.retention = retention
        self.interval = compact_interval() if interval is None else float(interval)
        self.deleted_requests = 0
        self.deleted_feedback = 0
        self.passes = 0
        # What was written since the last pass: past a tenth of a budget the next pass starts at once, so a
        # flood overshoots the retention by about a tenth of it plus what arrives during one pass, whatever
        # the interval.
        self._since = [0, 0, 0]  # logged requests, their size_bytes, labels
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_warning = 0.0

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="aidevops-compactor", daemon=True)
        self._thread.start()

    def written(self, requests: int = 0, size_bytes: int = 0, labels: int = 0) -> None:
        """Count rows just committed (the request-log writer and /feedback call it); wake the thread when due."""
        since = self._since
        since[0] += requests
        since[1] += size_bytes
        since[2] += labels
        if self._requests_past(10) or self._labels_past(10):
            self._wake.set()

    def requests_behind(self) -> bool:
        """Whether a whole request-log budget (rows or bytes) was written since the running pass began: the log
        writer then drops entries until the next pass, so no flood outruns the deletes."""
        return self._requests_past(1)

    def labels_behind(self) -> bool:
        """Whether a whole label budget was written since the running pass began: labels are then refused with a
        retry until the next pass. Each table holds back for its own budget only, so a flood of labels never
        blinds the request log that monitoring reads."""
        return self._labels_past(1)

    def _requests_past(self, parts: int) -> bool:
        """Whether the request log written since the running pass began is past 1/`parts` of its budget."""
        since, budget = self._since, self.retention
        return since[0] * parts > budget.max_rows or since[1] * parts > budget.max_bytes

    def _labels_past(self, parts: int) -> bool:
        return self._since[2] * parts > self.retention.max_rows

    def stop(self, timeout: float = 5.0) -> None:
        """Stop between two batches (a pass in progress is cut short; the next server start finishes it)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        conn = None
        while True:
            self._wake.wait(self.interval)
            if self._stop.is_set():
                break
            self._wake.clear()
            self._since = [0, 0, 0]
            try:
                if conn is None:
                    conn = connect(self.path)
                self.compact(conn)
            except (sqlite3.Error, OSError, AidevopsError) as exc:
                if time.monotonic() - self._last_warning > 60:
                    self._last_warning = time.monotonic()
                    log.warning("Request log compaction failed (%s); retrying in %gs.", exc, self.interval)
                if conn is not None:
                    conn.close()
                    conn = None
            self._stop.wait(MIN_GAP_S)  # back-to-back passes under a flood still leave the writers room
        if conn is not None:
            conn.close()

    # ------------------------------------------------------------------ one pass
    def compact(self, conn: sqlite3.Connection | None = None, now: float | None = None) -> PassResult:
        """One pass: delete what the retention no longer keeps, hand freed pages back; what it did."""
        own = conn is None
        conn = connect(self.path) if conn is None else conn
        started = time.monotonic()
        now = time.time() if now is None else float(now)
        try:
            result = PassResult()
            cut = max(now - self.retention.max_age_seconds, self._request_cut(conn))
            result.requests = self._delete(conn, "request_log", cut)
            cut = max(now - self.retention.max_age_seconds, self._feedback_cut(conn))
            result.feedback = self._delete(conn, "feedback", cut)
            # rollups are one small row per 5 s: kept for the longest chart even when the raw rows go sooner
            result.rollups = rollups.prune(
                conn, self.deployment, now - max(rollups.KEEP_SECONDS, self.retention.max_age_seconds)
            )
            if result.requests or result.feedback:
                result.pages_freed = self._vacuum(conn)
        finally:
            if own:
                conn.close()
        result.seconds = time.monotonic() - started
        self.passes += 1
        self.deleted_requests += result.requests
        self.deleted_feedback += result.feedback
        return result

    def _request_cut(self, conn: sqlite3.Connection) -> float:
        """The newest time at which rows go for being past the newest `max_rows` or past `max_mb` (else -inf).

        One query walks the (deployment, ts, size_bytes) index newest first with running counts and stops at
        the first row past either budget: the walk runs inside SQLite, which lets the event loop's thread run.
        """
        found = conn.execute(
            "SELECT ts FROM (SELECT ts, row_number() OVER w AS n, sum(COALESCE(size_bytes, 320)) OVER w AS total "
            "FROM request_log WHERE deployment IS ? WINDOW w AS (ORDER BY ts DESC ROWS UNBOUNDED PRECEDING)) "
            "WHERE n > ? OR total > ? LIMIT 1",
            (self.deployment, self.retention.max_rows, self.retention.max_bytes),
        ).fetchone()
        return float(found[0]) if found else float("-inf")

    def _feedback_cut(self, conn: sqlite3.Connection) -> float:
        found = conn.execute(
            "SELECT ts FROM feedback WHERE deployment IS ? ORDER BY ts DESC LIMIT 1 OFFSET ?",
            (self.deployment, self.retention.max_rows),
        ).fetchone()
        return float(found[0]) if found else float("-inf")

    def _delete(self, conn: sqlite3.Connection, table: str, cut: float) -> int:
        """Delete the deployment's rows of `table` with ts <= cut, oldest first, BATCH_ROWS per transaction.

        Rows logged in the same microsecond as the first row past a budget go with it: a budget is never
        exceeded, and may be undershot by those few rows."""
        if cut == float("-inf"):
            return 0
        deleted = 0
        statement = (
            f"DELETE FROM {table} WHERE id IN "
            f"(SELECT id FROM {table} WHERE deployment IS ? AND ts <= ? ORDER BY ts LIMIT {BATCH_ROWS})"
        )
        while not self._stop.is_set():
            n = conn.execute(statement, (self.deployment, cut)).rowcount
            deleted += max(n, 0)
            bound_wal(conn, self.path)
            if n < BATCH_ROWS:
                break
            time.sleep(PAUSE_S)
        return deleted

    def _vacuum(self, conn: sqlite3.Connection) -> int:
        """Hand free pages back to the file system, VACUUM_PAGES per transaction; then a passive checkpoint."""
        freed = 0
        if int(conn.execute("PRAGMA auto_vacuum").fetchone()[0]) == 2:
            while not self._stop.is_set():
                free = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
                if free == 0:
                    break
                # executescript steps the pragma to its end; execute() would free one page per call
                conn.executescript(f"PRAGMA incremental_vacuum({min(free, VACUUM_PAGES)});")
                step = free - int(conn.execute("PRAGMA freelist_count").fetchone()[0])
                if step <= 0:  # another connection holds the pages' last users: try again next pass
                    break
                freed += step
                time.sleep(PAUSE_S)
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        return freed
