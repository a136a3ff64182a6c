"""Reading live traffic back from the request log in `deploy.db`: the newest logged rows of a model version,
their predictions and request outcomes, and the feedback labels given for them.

The monitor in the server, `aidevops monitor`, the notebooks and the retraining loop all read the log
through this module, so the log's layout (see requestlog.py) is known in one place. Reads are bounded:
a window asks for the newest N rows of one version and walks the log backwards in batches over the
(model, version, id) index, whatever the size of the log.

Deployments: every reader takes `deployment`. Given, it reads only what that deployment's server logged
(over the (deployment, ...) indexes; the model is then checked without steering the index), so two
deployments of one model never share a window, a chart or labels. None reads every row of the model.

Row ids: feedback labels one row of one request, so a logged row is named `"<request_id>:<row>"`.

A pyfunc's DataFrame inputs come back as `LiveWindow.frame` (every logged column, categories and
missing values included; `rows` is then empty): a window holds one or the other, as one model version
is served through one input path.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from ..db import connect
from . import rollups

_BATCH = 2000


@dataclass
class LiveWindow:
    """The newest logged traffic of one model version (oldest first in every array)."""

    model: str
    version: str | None
    rows: np.ndarray  # logged input rows (float32; the log keeps a strided sample of a big request's rows)
    row_ids: list[str]  # "<request_id>:<row>" of each logged row
    row_predictions: list  # the prediction of each logged row
    row_ts: np.ndarray
    prediction_ids: list[str] = field(default_factory=list)  # every predicted row of the window's requests
    predictions: list = field(default_factory=list)
    prediction_ts: np.ndarray = field(default_factory=lambda: np.zeros(0))
    request_ts: np.ndarray = field(default_factory=lambda: np.zeros(0))  # every request (errors included)
    latency_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))
    failed: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # 5xx: the server's fault
    refused: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # 4xx: the client's
    first_id: int | None = None  # request_log ids the window spans
    last_id: int | None = None
    frame: Any = None  # pandas.DataFrame of the logged DataFrame inputs (a pyfunc's), else None

    @property
    def n_rows(self) -> int:
        return int(self.rows.shape[0]) if self.frame is None else int(len(self.frame))


def _where(*conditions: tuple[str, Any]) -> tuple[str, list]:
    """A WHERE clause (AND) and its arguments from (sql, value) pairs; a None value leaves its condition out."""
    kept = [(sql, v) for sql, v in conditions if v is not None]
    return " AND ".join(sql for sql, _ in kept), [v for _, v in kept]


def _scope(model: str, deployment: str | None) -> list[tuple[str, Any]]:
    """The conditions naming whose rows to read: a deployment's (its indexes), else a model's."""
    if deployment is None:
        return [("model = ?", model)]
    return [("deployment = ?", deployment), ("+model = ?", model)]  # `+`: not an index choice


def _open(db: Path | str) -> sqlite3.Connection | None:
    path = Path(db)
    if not path.is_file():
        return None
    return connect(path)


def read_window(
    db: Path | str,
    model: str,
    version: str | None,
    *,
    rows: int,
    n_features: int | None = None,
    after_id: int = 0,
    deployment: str | None = None,
    inputs: bool = True,
    conn: sqlite3.Connection | None = None,
) -> LiveWindow:
    """The newest `rows` logged input rows of `model` `version` (any version when None), with their requests.

    Requests without logged inputs (refused ones, or a pyfunc's non-numeric frames) count toward the
    request statistics of the window but add no rows. `after_id`: ignore log entries up to this id.
    `inputs=False`: the same window without its input rows (`rows`, `row_*` and `frame` left empty), for
    readers of its predictions and requests only (a chart's accuracy curve): the blobs are neither read nor decoded.
    `conn`: an open connection to `db` to read through (left open), so a caller reading several things shares one.
    """
    empty = LiveWindow(model, version, np.zeros((0, n_features or 0), np.float32), [], [], np.zeros(0))
    own = conn is None
    conn = _open(db) if own else conn
    if conn is None:
        return empty
    try:
        where, args = _where(*_scope(model, deployment), ("version = ?", version), ("id > ?", int(after_id)))
        # without inputs: an empty blob or text marks a row that has them (the window counts them), never decoded
        logged = (
            "inputs, predictions, frame"
            if inputs
            else "CASE WHEN inputs IS NULL THEN NULL ELSE x'' END, predictions, CASE WHEN frame IS NULL THEN NULL ELSE '' END"
        )
        # the shape of logged inputs matters only to rows that are decoded (n_features also to the count): a
        # window without inputs leaves those columns out rather than turn each of its rows' into Python ints
        width = "n_features" if inputs or n_features is not None else "NULL"
        shape = f"{width}, input_rows, {'row_step' if inputs else 'NULL'}"
        picked: list[tuple] = []
        have, before, batches = 0, None, 0
        while have < rows:
            clause = where + ("" if before is None else " AND id < ?")
            # as many requests as rows are missing (each answered one adds at least one), at least a batch that
            # doubles each time (refused requests add none): a window a few requests short reads a few more
            limit = min(_BATCH, max(rows - have, 64 << batches if before is not None else 0))
            batches += 1
            batch = conn.execute(
                f"SELECT id, request_id, ts, status, latency_ms, {shape}, {logged} "
                f"FROM request_log WHERE {clause} ORDER BY id DESC LIMIT {limit}",
                args + ([] if before is None else [before]),
            ).fetchall()
            if not batch:
                break
            for rec in batch:
                picked.append(rec)
                if rec[3] == 200 and (
                    (rec[8] is not None and (n_features is None or rec[5] == n_features)) or rec[10] is not None
                ):  # a frame: matched to the profile by column name
                    have += rec[6] or 0
                if have >= rows:
                    break
            before = batch[-1][0]
    finally:
        if own:
            conn.close()
    if not picked:
        return empty
    picked.reverse()
    return _assemble(model, version, picked, rows, n_features)


def _assemble(model: str, version: str | None, picked: list[tuple], rows: int, n_features: int | None) -> LiveWindow:
    blocks, row_ids, row_preds, row_ts = [], [], [], []
    frames: list[tuple[list, list]] = []
    f_ids, f_preds, f_ts = [], [], []
    pred_ids, preds, pred_ts = [], [], []
    width = n_features
    columns = list(zip(*picked))
    req_ts, status, lat = columns[2], columns[3], columns[4]  # of every request, errors included
    for _id, rid, ts, code, _latency, nf, input_rows, step, blob, pjson, fjson in picked:
        if code != 200:
            continue
        p = orjson.loads(pjson) if pjson else None
        if isinstance(p, dict):  # a pyfunc returning columns: not per-row labels we can judge
            p = None
        if isinstance(p, list) and len(p) == 1:  # the common single-row request, without building lists
            pred_ids.append(f"{rid}:0")
            preds.append(p[0])
            pred_ts.append(ts)
        elif isinstance(p, list):
            pred_ids += [f"{rid}:{i}" for i in range(len(p))]
            preds += p
            pred_ts += [ts] * len(p)
        if fjson:
            sample = orjson.loads(fjson)
            step = step or 1
            frames.append((sample["columns"], sample["data"]))
            for k in range(len(sample["data"])):
                r = k * step
                f_ids.append(f"{rid}:{r}")
                f_preds.append(p[r] if isinstance(p, list) and r < len(p) else None)
                f_ts.append(ts)
            continue
        if not blob or not input_rows or (width is not None and nf != width):
            continue
        width = nf
        block = np.frombuffer(blob, dtype="<f4").reshape(input_rows, nf)
        step = step or 1
        blocks.append(block)
        for k in range(input_rows):
            r = k * step
            row_ids.append(f"{rid}:{r}")
            row_preds.append(p[r] if isinstance(p, list) and r < len(p) else None)
            row_ts.append(ts)
    X = np.concatenate(blocks) if blocks else np.zeros((0, width or 0), np.float32)
    if X.shape[0] > rows:  # the oldest request of the window may overshoot: keep the newest `rows`
        cut = X.shape[0] - rows
        X, row_ids, row_preds, row_ts = X[cut:], row_ids[cut:], row_preds[cut:], row_ts[cut:]
    frame = None
    if frames and len(f_ids) >= X.shape[0]:  # the input path this version's traffic took
        frame = _frames(frames)
        X, row_ids, row_preds, row_ts = np.zeros((0, 0), np.float32), f_ids, f_preds, f_ts
        if len(frame) > rows:
            cut = len(frame) - rows
            frame, row_ids, row_preds, row_ts = (
                frame.iloc[cut:].reset_index(drop=True),
                row_ids[cut:],
                row_preds[cut:],
                row_ts[cut:],
            )
    codes = np.asarray(status, dtype=np.int64)
    return LiveWindow(
        model=model,
        version=version,
        rows=np.ascontiguousarray(X, dtype=np.float32),
        row_ids=row_ids,
        row_predictions=row_preds,
        row_ts=np.asarray(row_ts, dtype=np.float64),
        prediction_ids=pred_ids,
        predictions=preds,
        prediction_ts=np.asarray(pred_ts, dtype=np.float64),
        request_ts=np.asarray(req_ts, dtype=np.float64),
        latency_ms=np.asarray(lat, dtype=np.float64),
        failed=codes >= 500,
        refused=(codes >= 400) & (codes < 500),
        first_id=picked[0][0],
        last_id=picked[-1][0],
        frame=frame,
    )


def _frames(parts: list[tuple[list, list]]) -> Any:
    """One DataFrame from the logged samples; columns a request lacked are missing values in its rows."""
    import pandas as pd  # noqa: PLC0415 - only DataFrame (pyfunc) traffic needs pandas here

    frames = [pd.DataFrame(data, columns=columns) for columns, data in parts]
    frame = pd.concat(frames, ignore_index=True, sort=False) if len(frames) > 1 else frames[0]
    for name in frame.columns:  # JSON numbers with nulls arrive as objects: make them numbers again
        col = frame[name]
        if col.dtype.kind == "O":
            numeric = pd.to_numeric(col, errors="coerce")
            if numeric.notna().sum() == col.notna().sum() and not col.map(lambda v: isinstance(v, bool)).any():
                frame[name] = numeric
    return frame


def read_feedback(
    db: Path | str,
    model: str,
    *,
    first_id: int | None = None,
    last_id: int | None = None,
    version: str | None = None,
    deployment: str | None = None,
    conn: sqlite3.Connection | None = None,
) -> list[tuple[str, Any, float]]:
    """Labels [("<request_id>:<row>", label, label_ts)] given for logged requests of `model` in an id range
    (with `deployment`: labels that deployment's server took, for requests it logged); `conn` as in read_window."""
    own = conn is None
    conn = _open(db) if own else conn
    if conn is None:
        return []
    where, args = _where(
        *[("r." + sql.lstrip("+"), v) for sql, v in _scope(model, deployment)],
        ("r.version = ?", version),
        ("r.id >= ?", first_id),
        ("r.id <= ?", last_id),
    )
    # `+`: the labels are found by request id (an index probe per logged request of the window); steering by
    # deployment would walk every label the deployment ever got (1.3 s at 2 million labels, 1.4 ms this way)
    mine, mine_args = ("", []) if deployment is None else (" AND +f.deployment = ?", [deployment])
    try:
        found = conn.execute(
            "SELECT f.request_id, f.row, f.label, f.ts FROM feedback f WHERE f.request_id IN "
            f"(SELECT r.request_id FROM request_log r WHERE {where}){mine} ORDER BY f.id",
            args + mine_args,
        ).fetchall()
    except sqlite3.OperationalError:  # a log from before the feedback table existed
        return []
    finally:
        if own:
            conn.close()
    return [(f"{rid}:{row}", orjson.loads(label), ts) for rid, row, label, ts in found]


def logged_rows(
    db: Path | str, model: str, version: str, *, after_id: int = 0, deployment: str | None = None
) -> tuple[int, int]:
    """(input rows logged for `model` `version` after `after_id`, the newest id): counts windows cheaply.

    From the start (`after_id` 0) it sums the version's rollups (serving/rollups.py: one row per 5 s, however
    many requests), which outlive compacted rows; after an id it reads only the rows past that id (an index range).
    """
    conn = _open(db)
    if conn is None:
        return 0, after_id
    if not after_id:
        try:
            return rollups.logged_rows(conn, model, str(version), deployment=deployment)
        finally:
            conn.close()
    where, args = _where(*_scope(model, deployment), ("version = ?", str(version)), ("id > ?", int(after_id)))
    try:
        total, newest = conn.execute(
            f"SELECT COALESCE(SUM(input_rows), 0), MAX(id) FROM request_log WHERE {where} AND status = 200", args
        ).fetchone()
    finally:
        conn.close()
    return int(total), int(newest) if newest is not None else after_id


def read_requests(
    db: Path | str,
    model: str,
    *,
    since: float | None = None,
    version: str | None = None,
    limit: int = 1_000_000,
    deployment: str | None = None,
) -> dict[str, np.ndarray]:
    """Time, latency, status and version of every logged request of `model` since `since` (for time series charts).

    Reads four small columns over the (model, ts) or (deployment, ts) index: ~100,000 requests in tens of
    milliseconds.
    """
    conn = _open(db)
    empty = {
        "ts": np.zeros(0),
        "latency_ms": np.zeros(0),
        "status": np.zeros(0, np.int64),
        "version": np.zeros(0, object),
    }
    if conn is None:
        return empty
    where, args = _where(
        *_scope(model, deployment), ("ts >= ?", None if since is None else float(since)), ("version = ?", version)
    )
    try:
        rows = conn.execute(
            f"SELECT ts, latency_ms, status, version FROM request_log WHERE {where} ORDER BY ts DESC LIMIT ?",
            (*args, int(limit)),
        ).fetchall()
    finally:
        conn.close()
    if not rows:
        return empty
    rows.reverse()
    ts, lat, status, versions = zip(*rows)
    return {
        "ts": np.asarray(ts, np.float64),
        "latency_ms": np.asarray(lat, np.float64),
        "status": np.asarray(status, np.int64),
        "version": np.asarray(versions, dtype=object),
    }
