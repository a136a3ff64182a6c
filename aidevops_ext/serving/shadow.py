"""Shadow: a version that answers a mirrored copy of live traffic, off the request path, for comparison only.

`aidevops shadow NAME VERSION` loads a version into the server's shadow slot (serving/slots.py). After the
client's answer is sent, each request the active version answered is offered to a `ShadowMirror`: a bounded
queue and one worker thread. The client never waits for it: a full queue drops the request and counts the
drop. The worker predicts with the shadow on the same rows (at most `max_rows` per request) and stores both
answers in deploy.db's `shadow_log`, keyed by the server's request id, so feedback labels given for that
request judge both versions.

`summary` reads that log: the agreement rate (rows where both versions predict the same; numbers within a
relative 1e-6), and once labels arrive each version's accuracy on the labelled rows with a Wilson interval.
The shadow never answers a client, so nothing it predicts reaches the request log, the live monitor or the
retraining data.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ..monitoring.stats import wilson_interval
from .models import ServedModel
from .priority import lower_this_thread

log = logging.getLogger("aidevops.serving")

QUEUE_SIZE = 1000  # mirrored requests waiting for the shadow; more are dropped (and counted)
QUEUE_BYTES = 64 * 1024 * 1024  # and at most about this much input data waiting (wide rows fill it first)
MAX_ROWS = 100  # rows of one request the shadow predicts and the log keeps (copied, so a big batch is not held)
FLUSH_SECONDS = 0.5
FLUSH_ROWS = 200
RETAIN_ROWS = 10_000  # shadow_log rows (requests) kept per deployment; older ones go as new ones arrive
PRUNE_EVERY = 10  # flushes between two deletions of what is past RETAIN_ROWS
_STOP = object()


@dataclass
class MirrorStats:
    """Counters of one shadow since it was loaded."""

    mirrored: int = 0  # requests queued for the shadow
    dropped: int = 0  # requests not mirrored because the queue was full (in requests or in bytes)
    compared: int = 0  # requests the shadow answered
    rows: int = 0  # rows compared
    agreed: int = 0  # rows where both versions predicted the same
    errors: int = 0  # requests the shadow failed on


class ShadowMirror:
    """The shadow's queue and worker: `offer` never blocks; the worker predicts and stores both answers."""

    def __init__(
        self,
        model: ServedModel,
        db_path: Path | str | None,
        deployment: str | None,
        *,
        queue_size: int = QUEUE_SIZE,
        queue_bytes: int = QUEUE_BYTES,
        max_rows: int = MAX_ROWS,
        retain_rows: int = RETAIN_ROWS,
    ) -> None:
        self.model = model
        self.db_path = db_path
        self.deployment = deployment
        self.max_rows = max_rows
        self.retain_rows = retain_rows
        self.stats = MirrorStats()
        self.queue_bytes = queue_bytes
        self._queued_bytes = 0
        self._bytes_lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._run, name="aidevops-shadow", daemon=True)
        self._thread.start()

    def offer(self, request_id: str, active: ServedModel, data: Any, predictions: Any) -> bool:
        """Queue one answered request for the shadow; False (and a counted drop) when the queue is full."""
        data, predictions = _head(data, self.max_rows, copy=True), _head(predictions, self.max_rows, copy=True)
        size = _size(data)
        with self._bytes_lock:
            if self._queued_bytes + size > self.queue_bytes:
                self.stats.dropped += 1
                return False
            self._queued_bytes += size
        try:
            self._queue.put_nowait((request_id, time.time(), active, data, predictions, size))
        except queue.Full:
            with self._bytes_lock:
                self._queued_bytes -= size
            self.stats.dropped += 1
            return False
        self.stats.mirrored += 1
        return True

    def stop(self, timeout: float = 5.0) -> None:
        """Let the worker store what it has and end (what is still queued after `timeout` is left unstored)."""
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            pass
        self._thread.join(timeout)

    def describe(self) -> dict[str, Any]:
        """The shadow's version and counters (JSON-able)."""
        s = self.stats
        return {
            **self.model.describe(),
            "mirrored": s.mirrored,
            "dropped": s.dropped,
            "compared": s.compared,
            "errors": s.errors,
            "rows": s.rows,
            "agreement_rate": s.agreed / s.rows if s.rows else None,
            "queued": self._queue.qsize(),
        }

    # ------------------------------------------------------------------ the worker
    def _run(self) -> None:
        lower_this_thread()
        pending: list[tuple] = []
        last_flush = time.monotonic()
        self._conn: sqlite3.Connection | None = None
        self._flushes = 0
        while True:
            try:
                item = self._queue.get(timeout=FLUSH_SECONDS)
            except queue.Empty:
                item = None
            if item is _STOP:
                self._flush(pending, prune=True)
                if self._conn is not None:
                    self._conn.close()
                return
            if item is not None:
                *request, size = item
                pending.append(self._compare(*request))
                with self._bytes_lock:
                    self._queued_bytes -= size
            if pending and (len(pending) >= FLUSH_ROWS or time.monotonic() - last_flush >= FLUSH_SECONDS):
                self._flush(pending)
                pending = []
                last_flush = time.monotonic()

    def _compare(self, rid: str, ts: float, active_model: ServedModel, data: Any, preds: Any) -> tuple:
        data = _head(data, self.max_rows)
        active = _as_list(preds, self.max_rows)
        shadow = error = None
        agreed = 0
        try:
            raw = self.model.predict(data, None)
            shadow = _as_list(raw, self.max_rows)
            if shadow is not None and (active is None or np.ndim(active) != np.ndim(shadow)):
                # The client asked for another output (probabilities): compare the active version's `predict`.
                active = _as_list(active_model.predict(data, None), self.max_rows)
        except Exception as exc:  # noqa: BLE001 - the shadow's failure is evidence, never a crash of the worker
            error = f"{type(exc).__name__}: {str(exc)[:300]}"
            self.stats.errors += 1
        n = len(active) if active is not None else 0
        if shadow is not None and active is not None:
            n = min(len(active), len(shadow))
            agreed = sum(1 for a, s in zip(active[:n], shadow[:n]) if same(a, s))
            self.stats.compared += 1
            self.stats.rows += n
            self.stats.agreed += agreed
        return (
            self.deployment,
            rid,
            ts,
            active_model.name,
            active_model.version,
            self.model.version,
            n,
            agreed,
            None if active is None else orjson.dumps(active, option=orjson.OPT_SERIALIZE_NUMPY).decode(),
            None if shadow is None else orjson.dumps(shadow, option=orjson.OPT_SERIALIZE_NUMPY).decode(),
            error,
        )

    def _flush(self, rows: list[tuple], *, prune: bool = False) -> None:
        """Store the compared requests (one transaction), and every PRUNE_EVERY flushes delete what is past
        `retain_rows` for this deployment. The worker's own connection, opened on its first flush."""
        if not rows or not self.db_path:
            return
        from ..db import connect  # noqa: PLC0415

        self._flushes += 1
        try:
            if self._conn is None:
                self._conn = connect(self.db_path)
            conn = self._conn
            conn.execute("BEGIN")  # the connection autocommits: one transaction for the batch and the pruning
            try:
                conn.executemany(
                    "INSERT INTO shadow_log (deployment, request_id, ts, model, active_version, shadow_version, "
                    "n_rows, agreed, active_predictions, shadow_predictions, error) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
                if prune or self._flushes % PRUNE_EVERY == 1:
                    conn.execute(
                        "DELETE FROM shadow_log WHERE deployment IS ? AND id <= (SELECT id FROM shadow_log "
                        "WHERE deployment IS ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                        (self.deployment, self.deployment, self.retain_rows),
                    )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except Exception as exc:  # noqa: BLE001 - the log is evidence; serving goes on without it
            log.warning("shadow log not written (%s: %s); %d requests lost", type(exc).__name__, exc, len(rows))
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def _head(data: Any, n: int, *, copy: bool = False) -> Any:
    """The first `n` rows; with `copy`, a copy when there were more, so the whole batch is not kept alive."""
    if data is None or isinstance(data, dict):
        return data
    try:
        if len(data) <= n:
            return data
    except TypeError:
        return data
    if hasattr(data, "iloc"):
        head = data.iloc[:n]
        return head.copy() if copy else head
    head = data[:n]
    return head.copy() if copy and hasattr(head, "copy") else head


def _size(data: Any) -> int:
    """About how many bytes a request's input holds (numbers: 8 bytes a value, text columns counted alike)."""
    nbytes = getattr(data, "nbytes", None)
    if isinstance(nbytes, int):
        return nbytes
    shape = getattr(data, "shape", None)
    if shape is not None and len(shape) == 2:
        return int(shape[0]) * int(shape[1]) * 8
    return 1024


def _as_list(preds: Any, n: int) -> list | None:
    """Per-row predictions as a list (None: outputs that are not one value per row, e.g. a dict of columns)."""
    if preds is None or isinstance(preds, dict):
        return None
    if hasattr(preds, "to_numpy"):
        preds = preds.to_numpy()
    arr = np.asarray(preds)
    if arr.ndim == 0:
        return None
    return arr[:n].tolist()


def same(a: Any, b: Any) -> bool:
    """Whether two per-row predictions agree: equal, or numbers within a relative 1e-6."""
    if a == b:
        return True
    try:
        return bool(np.allclose(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), rtol=1e-6, atol=0))
    except (TypeError, ValueError):
        return False


class ShadowCollector(Collector):
    """/metrics: the running shadow's counters and agreement (nothing while there is no shadow)."""

    def __init__(self, slots: Any) -> None:
        self.slots = slots

    def collect(self):  # noqa: D102 - prometheus_client protocol
        mirror = self.slots.shadow_mirror
        if mirror is None:
            return
        labels, values = ["model", "version"], [mirror.model.name, mirror.model.version]
        s = mirror.stats
        for name, doc, value in (
            ("mirrored", "Requests mirrored to the shadow after their answer was sent.", s.mirrored),
            ("dropped", "Requests not mirrored because the shadow's queue was full.", s.dropped),
            ("compared", "Mirrored requests the shadow answered.", s.compared),
            ("errors", "Mirrored requests the shadow failed on.", s.errors),
        ):
            family = CounterMetricFamily(f"aidevops_shadow_{name}", doc, labels=labels)
            family.add_metric(values, float(value))
            yield family
        if s.rows:
            gauge = GaugeMetricFamily(
                "aidevops_shadow_agreement", "Share of compared rows where shadow and active agree.", labels=labels
            )
            gauge.add_metric(values, s.agreed / s.rows)
            yield gauge


# --------------------------------------------------------------------------- reading


def summary(
    db_path: Path | str, deployment: str | None, version: str | None = None, *, confidence: float = 0.95
) -> dict[str, Any] | None:
    """Agreement and, with labels, both versions' accuracy for one shadow version (default: the latest logged).

    None when the deployment has no shadow log (and no version was named)."""
    from ..db import connect  # noqa: PLC0415

    if not Path(db_path).is_file():
        return None
    conn = connect(db_path, readonly=True)
    try:
        if version is None:
            row = conn.execute(
                "SELECT shadow_version FROM shadow_log WHERE deployment IS ? ORDER BY id DESC LIMIT 1", (deployment,)
            ).fetchone()
            if row is None:
                return None
            version = row[0]
        requests, rows, agreed, errors, active = conn.execute(
            "SELECT count(*), coalesce(sum(n_rows), 0), coalesce(sum(agreed), 0), count(error), max(active_version) "
            "FROM shadow_log WHERE deployment IS ? AND shadow_version = ?",
            (deployment, version),
        ).fetchone()
        labelled = conn.execute(
            "SELECT s.id, s.active_predictions, s.shadow_predictions, f.row, f.label FROM shadow_log s "
            "JOIN feedback f ON f.request_id = s.request_id "
            "WHERE s.deployment IS ? AND s.shadow_version = ? AND s.error IS NULL ORDER BY f.id",
            (deployment, version),
        ).fetchall()
    finally:
        conn.close()
    active_right, shadow_right = _judge(labelled)
    return {
        "version": str(version),
        "active_version": active,
        "requests": int(requests),
        "rows": int(rows),
        "errors": int(errors),
        "agreement_rate": agreed / rows if rows else None,
        "active_accuracy": _accuracy(active_right, confidence),
        "shadow_accuracy": _accuracy(shadow_right, confidence),
    }


def _judge(labelled: list[tuple]) -> tuple[list[bool], list[bool]]:
    """For each labelled row (the latest label of a row wins): was the active right, was the shadow right."""
    latest: dict[tuple[int, int], tuple[Any, Any, Any]] = {}
    decoded: dict[int, tuple[list, list]] = {}
    for key, a_json, s_json, row, label in labelled:
        if key not in decoded:
            decoded[key] = (orjson.loads(a_json) if a_json else [], orjson.loads(s_json) if s_json else [])
        active, shadow = decoded[key]
        if row < len(active) and row < len(shadow):
            latest[(key, row)] = (active[row], shadow[row], orjson.loads(label))
    active_right = [same(a, y) for a, _, y in latest.values()]
    shadow_right = [same(s, y) for _, s, y in latest.values()]
    return active_right, shadow_right


def _accuracy(right: list[bool], confidence: float) -> dict[str, Any] | None:
    n = len(right)
    if not n:
        return None
    k = int(sum(right))
    low, high = wilson_interval(k, n, confidence)
    return {"value": k / n, "low": float(low), "high": float(high), "labels": n}
