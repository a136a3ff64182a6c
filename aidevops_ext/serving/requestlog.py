"""The request log: sampled requests and predictions, written to the workspace's `deploy.db` off the request path.

The event loop only appends a tuple to a bounded deque (`offer`); a background thread drains it every
`log_flush_seconds` and writes one transaction per batch (SQLite, WAL). When the deque is full the entry
is dropped and counted: logging never blocks or fails a request. Feedback labels are few and must not
be lost silently, so `/feedback` writes them synchronously (in a worker thread) instead.

Tables (monitoring reads them; their layout and migrations are in aidevops_ext/db.py):
- `request_log`: request id, time, model/version/alias, protocol, HTTP status, latency, row and feature
  counts, a strided sample of at most `log_max_rows` input rows as a float32 blob (row-major, little
  endian; rows 0, row_step, 2*row_step, ...), every prediction as JSON, the error message of a refused request.
  A pyfunc's DataFrame input is logged whole instead, every column with its categories and missing values,
  as JSON in `frame` (`{"columns": [...], "data": [[...], ...]}`, the same strided sample of rows; `inputs`
  stays NULL), so drift can cover any model's columns.
- `feedback`: request id, row index within that request, label (JSON), time.
Both carry the name of the deployment whose server wrote them (NULL for a plain `aidevops serve`), and
a logged request its approximate weight on disk (`size_bytes`). Retention (the `monitor:` section's
`retention`) is enforced by a background compactor started with the writer (serving/compaction.py).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from ..db import (  # connect re-exported: tests open the log as requestlog.connect
    WAL_SIZE_LIMIT_BYTES,
    bound_wal,
    connect,
)
from ..errors import AidevopsError
from ..monitoring.rules import Retention
from . import rollups
from .compaction import Compactor
from .config import ServingConfig
from .labels import screen
from .priority import lower_this_thread

log = logging.getLogger("aidevops.serving")

_INSERT = (
    "INSERT INTO request_log (request_id, ts, model, version, alias, protocol, status, latency_ms, n_rows, "
    "n_features, input_rows, row_step, inputs, predictions, error, frame, deployment, size_bytes) "
    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)
# The fixed part of a logged row's weight on disk: its other columns, the record and page overhead and its
# five index entries (measured by benchmarks/flood.py; the same figure migration 2 of db.py uses).
ROW_OVERHEAD_BYTES = 320
_BATCH = 5000
# Bytes of logged rows per transaction: one transaction's pages all go to the -wal file, and the retention's
# backpressure (Compactor.requests_behind) is checked between two transactions.
_BATCH_BYTES = WAL_SIZE_LIMIT_BYTES // 4


class RequestLog:
    """Bounded, sampled, batched request logging to SQLite; `offer` is the only call on the request path."""

    def __init__(self, path: Path | None, config: ServingConfig) -> None:
        self.path = path
        self.enabled = bool(path) and config.log_requests
        self.deployment: str | None = None
        self.retention = Retention()
        self.compactor: Compactor | None = None
        self.compact = True  # False in all but one of several processes logging to one deploy.db
        self._queue: deque = deque()
        self._cap = config.log_queue_size
        self._rate = float(config.log_sample_rate)
        self._per_second = float(config.log_max_per_second)
        self._max_rows = int(config.log_max_rows)
        self._flush = float(config.log_flush_seconds)
        self._window = 0.0
        self._in_window = 0
        self.written = 0
        self.dropped = 0
        self.sampled_out = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._feedback_lock = threading.Lock()
        self._drain_lock = threading.Lock()
        self._feedback_conn: sqlite3.Connection | None = None
        self._feedback_pool: ThreadPoolExecutor | None = None
        self._last_warning = 0.0

    # ---------------------------------------------------------------- request path (event loop)
    def admit(self, now: float) -> bool:
        """Whether to log this request: sampling, the per-second cap, then room in the queue."""
        if not self.enabled:
            return False
        if self._rate < 1.0 and random.random() >= self._rate:
            self.sampled_out += 1
            return False
        if now - self._window >= 1.0:
            self._window = now
            self._in_window = 0
        if self._in_window >= self._per_second:
            self.sampled_out += 1
            return False
        self._in_window += 1
        if len(self._queue) >= self._cap:
            self.dropped += 1
            return False
        return True

    def offer(self, entry: tuple) -> None:
        """Queue one entry (see _INSERT for its fields, with X and predictions as arrays); never blocks."""
        if len(self._queue) >= self._cap:
            self.dropped += 1
            return
        self._queue.append(entry)

    def stats(self) -> dict[str, int]:
        """Counters for /metrics."""
        return {
            "written": self.written,
            "dropped": self.dropped,
            "sampled_out": self.sampled_out,
            "queued": len(self._queue),
        }

    def bind(self, deployment: str | None, retention: Retention | None = None) -> None:
        """Name the deployment the rows are written for and the retention its compactor keeps (before start)."""
        self.deployment = deployment
        self.retention = retention or Retention()

    @property
    def _db(self) -> Path:
        """deploy.db, which a log without one (serving with no workspace) never opens: it is disabled."""
        if self.path is None:
            raise RuntimeError("this request log has no deploy.db to write to")
        return self.path

    # ---------------------------------------------------------------- writer thread
    def start(self) -> None:
        """Create the tables and start the writer thread (logging is disabled if deploy.db cannot be opened)."""
        if not self.enabled or self._thread is not None:
            return
        try:
            connect(self._db).close()
        except (sqlite3.Error, OSError, AidevopsError) as exc:  # a newer aidevops's file included: serve, unlogged
            log.warning("Request log disabled: cannot open %s (%s).", self.path, exc)
            self.enabled = False
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="aidevops-requestlog", daemon=True)
        self._thread.start()
        if self.compact:
            self.compactor = Compactor(self._db, self.deployment, self.retention)
            self.compactor.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Flush what is queued and stop the writer."""
        self._stop.set()
        if self.compactor is not None:
            self.compactor.stop(timeout)
            self.compactor = None
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._feedback_pool is not None:
            self._feedback_pool.shutdown(wait=True)
            self._feedback_pool = None
        with self._feedback_lock:
            if self._feedback_conn is not None:
                self._feedback_conn.close()
                self._feedback_conn = None

    async def store_feedback(
        self, rows: list[tuple[str, int, Any]], models: Iterable[str] = ()
    ) -> tuple[int, dict[str, int]]:
        """`write_feedback` from the event loop, on the log's own low-priority thread (serving/priority.py). Labels
        that would be deferred are deferred here, before the hand-over: under a flood most bodies are, and each
        hand-over costs the event loop a wake-up."""
        self._defer_while_behind()
        if self._feedback_pool is None:
            self._feedback_pool = ThreadPoolExecutor(1, "aidevops-feedback", initializer=lower_this_thread)
        return await asyncio.get_running_loop().run_in_executor(self._feedback_pool, self.write_feedback, rows, models)

    def flush(self) -> None:
        """Write everything queued now (tests and shutdown)."""
        conn = connect(self._db)
        try:
            self._drain(conn)
        finally:
            conn.close()

    def _run(self) -> None:
        conn = None
        while True:
            stopping = self._stop.wait(self._flush)
            try:
                if conn is None:
                    conn = connect(self._db)
                self._drain(conn)
            except (sqlite3.Error, OSError, AidevopsError) as exc:
                self._warn(f"Request log write failed ({exc}); entries are dropped until it recovers.")
                if conn is not None:
                    conn.close()
                    conn = None
            if stopping:
                break
        if conn is not None:
            conn.close()

    def _drain(self, conn: sqlite3.Connection) -> None:
        """Write the queue in batches (the writer thread, flush(), and /feedback before it screens a label for a
        request still queued). Entries leave the queue only once committed, or dropped (an error, or the log over
        its retention)."""
        queue = self._queue
        with self._drain_lock:  # the writer thread and flush() never write the same entries twice
            while queue:
                entries = list(itertools.islice(queue, _BATCH))  # one C call: the event loop cannot interleave
                if self.compactor is not None and self.compactor.requests_behind():
                    for _ in entries:  # the log is a bounded sample under a flood: these are not kept
                        queue.popleft()
                    self.dropped += len(entries)
                    self._warn("Request log over its retention while compaction catches up; entries are dropped.")
                    continue
                batch, size = [], 0
                for entry in entries:
                    batch.append(row := self._row(entry))
                    size += row[-1]
                    if size >= _BATCH_BYTES:
                        break
                entries = entries[: len(batch)]
                try:
                    conn.execute("BEGIN")
                    conn.executemany(_INSERT, batch)
                    # the batch's rollups (what charts read) commit with its rows: a reader sees both or neither
                    last_id = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
                    rollups.record(conn, batch, last_id, [entry[9] for entry in entries])
                    conn.execute("COMMIT")
                except sqlite3.Error:
                    self.dropped += len(batch)
                    try:
                        conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                    raise
                finally:
                    for _ in entries:
                        queue.popleft()
                self.written += len(batch)
                if self.compactor is not None:  # a flood wakes it before its interval is up
                    self.compactor.written(requests=len(batch), size_bytes=size)
                bound_wal(conn, self._db)

    def _row(self, entry: tuple) -> tuple:
        """An entry as request_log's insert tuple. Runs once per logged request on the writer thread: the common
        case (a 2-D numeric array, array predictions) takes no detour."""
        rid, ts, model, version, alias, protocol, status, latency_ms, X, preds, error = entry
        n_rows = n_features = input_rows = step = None
        blob = frame = None
        size = ROW_OVERHEAD_BYTES
        if type(X) is not np.ndarray and hasattr(X, "select_dtypes") and hasattr(X, "iloc"):
            n_rows, n_features = X.shape
            step = max(1, -(-n_rows // self._max_rows)) if self._max_rows else None
            if step is not None and n_rows:
                frame = _frame_json(X.iloc[::step])
                input_rows = -(-n_rows // step) if frame is not None else None
                size += len(frame) if frame is not None else 0
        elif isinstance(X, np.ndarray) and X.ndim == 2 and X.dtype.kind in "fiub":
            n_rows, n_features = X.shape
            if self._max_rows:
                step = max(1, -(-n_rows // self._max_rows))
                sample = np.ascontiguousarray(X if step == 1 else X[::step], dtype="<f4")
                input_rows, blob = sample.shape[0], sample.tobytes()
                size += len(blob)
        preds_json = _json(preds)
        if preds_json is not None:
            size += len(preds_json)
        error_text = None
        if error is not None:
            error_text = str(error)[:1000]
            size += len(error_text)
        return (
            rid,
            ts,
            model,
            version,
            alias,
            protocol,
            status,
            latency_ms,
            n_rows,
            n_features,
            input_rows,
            step,
            blob,
            preds_json,
            error_text,
            frame,
            self.deployment,
            size,
        )

    def _warn(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last_warning > 60:
            self._last_warning = now
            log.warning(message)

    # ---------------------------------------------------------------- feedback (worker thread)
    def _defer_while_behind(self) -> None:
        if self.compactor is not None and self.compactor.labels_behind():
            raise LabelsDeferred

    def write_feedback(
        self, rows: list[tuple[str, int, Any]], models: Iterable[str] = ()
    ) -> tuple[int, dict[str, int]]:
        """Store ground-truth labels [(request_id, row, label)] durably, those serving/labels.py lets through
        (rows of `models`' logged requests, first label per row); returns (written, refused counts by reason)."""
        if not self.path:
            return 0, {"unknown": len(rows)} if rows else {}
        self._defer_while_behind()
        now = time.time()
        with self._feedback_lock:  # one writer: a row cannot be labelled twice by two requests at once
            if self._feedback_conn is None:
                self._feedback_conn = connect(self.path)
            conn = self._feedback_conn
            try:
                rows, refused = self._screen(conn, rows, models)
                values = [(rid, row, orjson.dumps(label).decode(), now, self.deployment) for rid, row, label in rows]
                conn.executemany(
                    "INSERT INTO feedback (request_id, row, label, ts, deployment) VALUES (?,?,?,?,?)", values
                )
                conn.execute("COMMIT")
            except sqlite3.Error:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        if self.compactor is not None:
            self.compactor.written(labels=len(values))
        return len(values), refused

    def _screen(
        self, conn: sqlite3.Connection, rows: list[tuple[str, int, Any]], models: Iterable[str]
    ) -> tuple[list[tuple[str, int, Any]], dict[str, int]]:
        """serving/labels.py's screen in an open write transaction. A label can name a request answered a moment
        ago that still waits in the queue: the queue is written first then, so a label is only ever kept for a
        request the log holds (one dropped meanwhile, over its retention, gets its label refused)."""
        # IMMEDIATE: the write lock before the check reads, so no log write can slip in between and turn this
        # read transaction's upgrade into an instant "database is locked"
        conn.execute("BEGIN IMMEDIATE")
        kept, refused = screen(conn, rows, models, self.deployment)
        if refused.get("unknown") and self._queue:
            conn.execute("COMMIT")
            self._drain(conn)
            conn.execute("BEGIN IMMEDIATE")
            kept, refused = screen(conn, rows, models, self.deployment)
        return kept, refused


class LabelsDeferred(Exception):
    """Labels arrive faster than compaction deletes them: the client is asked to send them again shortly."""


def _frame_json(sample: Any) -> str | None:
    """A DataFrame sample as {"columns", "data"} JSON: NaN/None as null, other objects (dates) as text."""
    try:
        return orjson.dumps(
            {"columns": [str(c) for c in sample.columns], "data": sample.to_numpy(dtype=object).tolist()},
            option=orjson.OPT_SERIALIZE_NUMPY,
            default=str,
        ).decode()
    except Exception:  # noqa: BLE001 - an input we cannot encode is not logged; the request is unaffected
        return None


def _json(preds: Any) -> str | None:
    if preds is None:
        return None
    try:
        return orjson.dumps(preds, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    except TypeError:
        try:
            from mlflow.utils.proto_json_utils import _get_jsonable_obj  # noqa: PLC0415 - pyfunc outputs only

            return orjson.dumps(
                _get_jsonable_obj(preds, pandas_orient="records"), option=orjson.OPT_SERIALIZE_NUMPY, default=str
            ).decode()
        except Exception:  # noqa: BLE001 - a prediction we cannot encode is logged as text
            return orjson.dumps(str(preds)[:10000]).decode()
