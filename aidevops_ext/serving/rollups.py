"""Request rollups: per 5-second bucket of a deployment's model version, the counts charts and window counts need.

The request log keeps every logged request (serving/requestlog.py); a chart over an hour of a busy server
would read millions of them. So the writer also folds each batch into `request_rollup` (db.py, migration 4)
in the same transaction (`record`): per (deployment, bucket, model, version) the requests, 5xx errors, 4xx
refusals, input rows of answered requests, latency sum/min/max, a latency histogram on fixed log-spaced
bins (`db.LATENCY_EDGES_MS`, four per doubling) from which p50/p95/p99 are read within one bin, predicted
classes (classifiers), and the newest request_log id counted. Rows and rollups commit together, so a
reader sees both or neither.

Readers: `request_series` (the Monitor panel's request chart, deploy/observe.py) and `logged_rows` (how
many input rows a version has logged: the monitor's completed windows, serving/livedata.py). A chart's
buckets are whole rollup buckets: `chart_range` aligns its end to the next 5-second boundary (so the
current, partial bucket is in it) and its width to a multiple of 5 s.

Retention: rollups are small (one row per 5 s of traffic per version, ~200 bytes), so they outlive the raw
rows: the compactor (serving/compaction.py) deletes a deployment's rollups only past `KEEP_SECONDS`, or the
raw rows' `max_age_days` when that is longer. Standard library and NumPy only (the server imports this).
"""

from __future__ import annotations

import logging
import math
import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import orjson

from ..db import LATENCY_EDGES_MS, ROLLUP_SECONDS

log = logging.getLogger("aidevops.serving")
_last_warning = [0.0]

KEEP_SECONDS = 8 * 86400  # the longest chart (a week, deploy/observe.py) and a day's margin
MAX_CLASSES = 100  # predictions with more distinct values than this in a bucket are not a classifier's labels
_EDGES = np.asarray(LATENCY_EDGES_MS, dtype=np.float64)
N_BINS = len(LATENCY_EDGES_MS) + 1

# The request_log insert tuple's fields this module reads (requestlog._INSERT's order).
_TS, _MODEL, _VERSION, _STATUS, _LATENCY, _INPUT_ROWS, _DEPLOYMENT = 1, 2, 3, 6, 7, 10, 16

_COLUMNS = (
    "deployment, bucket, model, version, requests, errors, refused, input_rows, latency_sum_ms, latency_min_ms, "
    "latency_max_ms, latency_bins, classes, last_id"
)
_UPSERT = f"INSERT OR REPLACE INTO request_rollup ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
_SELECT = f"SELECT {_COLUMNS} FROM request_rollup WHERE deployment = ? AND bucket = ? AND model = ? AND version = ?"


def latency_bins(latency_ms: Any) -> np.ndarray:
    """The histogram bin of each latency: how many edges are at or below it (the migration's SQL CASE agrees)."""
    return np.searchsorted(_EDGES, np.asarray(latency_ms, dtype=np.float64), side="right")


def bucket_of(ts: Any) -> np.ndarray:
    """The start of each time's rollup bucket (int64 epoch seconds), as migration 4 computes it."""
    return (np.asarray(ts, dtype=np.float64) / ROLLUP_SECONDS).astype(np.int64) * ROLLUP_SECONDS


# ---------------------------------------------------------------------------------------------- writing
def record(conn: sqlite3.Connection, rows: Sequence[tuple], last_id: int, predictions: Sequence[Any] = ()) -> int:
    """Fold a batch of just-inserted request_log rows (requestlog's insert tuples, ids last_id-len(rows)+1 ..
    last_id) into their rollups; call inside the batch's transaction. `predictions`: each row's raw predictions
    (classes are counted from 1-D integer, boolean or string arrays). Returns the rollup rows written."""
    if not rows:
        return 0
    try:
        out = _fold(rows, int(last_id) - len(rows) + 1, predictions)
    except Exception as exc:  # noqa: BLE001 - a bug here must not stop the log: its rows are written, unrolled
        if time.monotonic() - _last_warning[0] > 60:
            _last_warning[0] = time.monotonic()
            log.warning(
                "Request rollups skipped for a batch (%s: %s); charts miss its requests.", type(exc).__name__, exc
            )
        return 0
    return write(conn, out)


def write(conn: sqlite3.Connection, folded: Sequence[list]) -> int:
    """Store rollup rows as `fold` returns them, adding each to the stored row of its bucket if an earlier batch
    began it; call inside a transaction. Returns the rollup rows written."""
    merged = []
    for row in folded:
        old = conn.execute(_SELECT, tuple(row[:4])).fetchone()
        if old is not None:  # a bucket an earlier batch began: add to it
            row = _merge(old, row)
        merged.append(
            (*row[:11], _bins_text(row[11]), None if row[12] is None else orjson.dumps(row[12]).decode(), row[13])
        )
    conn.executemany(_UPSERT, merged)
    return len(merged)


def _fold(rows: Sequence[tuple], first_id: int, predictions: Sequence[Any]) -> list[list]:
    """The batch's rollup rows (`fold`'s), one per (deployment, bucket, model, version)."""
    columns = list(zip(*rows))  # one C pass: a column per field
    deployments = [d or "" for d in columns[_DEPLOYMENT]]  # a plain `aidevops serve`'s rows: ''
    names = sorted(set(zip(deployments, columns[_MODEL], columns[_VERSION])))
    if len(names) == 1:  # one server logs one deployment, mostly one version at a time
        codes = np.zeros(len(rows), np.int64)
    else:
        index = {key: i for i, key in enumerate(names)}
        codes = np.fromiter(
            (index[key] for key in zip(deployments, columns[_MODEL], columns[_VERSION])), np.int64, len(rows)
        )

    def classes(group_of: np.ndarray, n_groups: int) -> list[dict | None]:
        try:
            if len(predictions) == len(rows):
                return _classes(group_of, predictions, n_groups)
        except Exception:  # noqa: BLE001 - predictions of an unexpected kind: their classes are not counted
            pass
        return [None] * n_groups

    return fold(
        names,
        codes,
        ts=np.asarray(columns[_TS], np.float64),
        status=np.asarray(columns[_STATUS], np.int64),
        latency_ms=np.asarray(columns[_LATENCY], np.float64),
        input_rows=np.nan_to_num(np.asarray(columns[_INPUT_ROWS], np.float64)),  # None (nothing logged): 0
        first_id=first_id,
        classes=classes,
    )


def fold(
    names: Sequence[tuple[str, str, str]],
    codes: np.ndarray,
    *,
    ts: np.ndarray,
    status: np.ndarray,
    latency_ms: np.ndarray,
    input_rows: np.ndarray,
    first_id: int,
    classes: Callable[[np.ndarray, int], list[dict | None]],
) -> list[list]:
    """The rollup rows of requests with ids first_id, first_id + 1, ...: request i is of names[codes[i]]
    ((deployment, model, version)), logged at ts[i]. One row per (deployment, bucket, model, version), in the
    stored columns' order, with the latency histogram as {bin: count} and the predicted classes as
    `classes(group_of, n_groups)` gives them for the groups (group_of: each request's group)."""
    slots = bucket_of(ts) // ROLLUP_SECONDS
    base = int(slots.min())
    groups, group_of = np.unique(np.asarray(codes, np.int64) * (1 << 40) + (slots - base), return_inverse=True)
    group_of = group_of.reshape(-1)
    n_groups = len(groups)
    counts = np.bincount(group_of, minlength=n_groups)
    errors = np.bincount(group_of, weights=status >= 500, minlength=n_groups)
    refused = np.bincount(group_of, weights=(status >= 400) & (status < 500), minlength=n_groups)
    answered = np.bincount(group_of, weights=np.where(status == 200, input_rows, 0), minlength=n_groups)
    lat_sum = np.bincount(group_of, weights=latency_ms, minlength=n_groups)
    lat_min = np.full(n_groups, np.inf)
    lat_max = np.full(n_groups, -np.inf)
    np.minimum.at(lat_min, group_of, latency_ms)
    np.maximum.at(lat_max, group_of, latency_ms)
    newest = np.zeros(n_groups, np.int64)
    np.maximum.at(newest, group_of, np.arange(first_id, first_id + len(group_of), dtype=np.int64))
    hist = np.bincount(group_of * N_BINS + latency_bins(latency_ms), minlength=n_groups * N_BINS)
    hist = hist.reshape(n_groups, N_BINS)
    seen = classes(group_of, n_groups)
    out = []
    for g in range(n_groups):
        deployment, model, version = names[int(groups[g] >> 40)]
        bucket = (base + int(groups[g] & ((1 << 40) - 1))) * ROLLUP_SECONDS
        bins = {int(b): int(hist[g, b]) for b in np.flatnonzero(hist[g])}
        row = [
            deployment,
            bucket,
            model,
            version,
            int(counts[g]),
            int(errors[g]),
            int(refused[g]),
            int(answered[g]),
            float(lat_sum[g]),
            float(lat_min[g]),
            float(lat_max[g]),
            bins,
            seen[g],
            int(newest[g]),
        ]
        out.append(row)
    return out


def _merge(old: tuple, new: list) -> list:
    bins = parse_bins(old[11])
    for b, c in new[11].items():
        bins[b] = bins.get(b, 0) + c
    classes = orjson.loads(old[12]) if old[12] else None
    if new[12] is not None:
        classes = classes or {}
        for k, c in new[12].items():
            classes[k] = classes.get(k, 0) + c
        if len(classes) > MAX_CLASSES:
            classes = None
    return [
        *new[:4],
        old[4] + new[4],
        old[5] + new[5],
        old[6] + new[6],
        old[7] + new[7],
        old[8] + new[8],
        min(old[9], new[9]),
        max(old[10], new[10]),
        bins,
        classes,
        max(old[13], new[13]),
    ]


def _classes(group_of: np.ndarray, predictions: Sequence[Any], n_groups: int) -> list[dict | None]:
    """Predicted class counts per group, from 1-D integer, boolean or string predictions (else None for a group).

    All of a batch's predictions are counted at once (one concatenation, one np.unique): a row-by-row count
    cost the writer a sixth of its time."""
    out: list[dict | None] = [None] * n_groups
    picked = [i for i, p in enumerate(predictions) if type(p) is np.ndarray and p.ndim == 1]
    if not picked:
        return out
    arrays = [predictions[i] for i in picked]
    try:
        values = np.concatenate(arrays)
    except (ValueError, TypeError):
        return out
    if values.dtype.kind not in "iubU":  # floats: a regressor's (or mixed) outputs, not labels
        return out
    labels, label_of = np.unique(values, return_inverse=True)
    if len(labels) > MAX_CLASSES * n_groups:
        return out
    owner = np.repeat(group_of[picked], np.fromiter(map(len, arrays), np.int64, len(arrays)))
    counts = np.bincount(owner * len(labels) + label_of.reshape(-1), minlength=n_groups * len(labels))
    counts = counts.reshape(n_groups, len(labels))
    names = [str(int(v)) if isinstance(v, (bool, np.bool_)) else str(v) for v in labels.tolist()]
    for g in np.unique(group_of[picked]).tolist():
        nz = np.flatnonzero(counts[g])
        if len(nz) <= MAX_CLASSES:
            out[g] = {names[c]: int(counts[g, c]) for c in nz}
    return out


def _bins_text(bins: dict[int, int]) -> str:
    return " ".join(f"{b}:{c}" for b, c in sorted(bins.items()))


def parse_bins(text: str | None) -> dict[int, int]:
    """A rollup's latency histogram {bin: count} from its stored text ("bin:count bin:count")."""
    out: dict[int, int] = {}
    for pair in (text or "").split():
        b, _, c = pair.partition(":")
        out[int(b)] = out.get(int(b), 0) + int(c)
    return out


# ---------------------------------------------------------------------------------------------- reading
def _scope(model: str, deployment: str | None) -> tuple[str, list]:
    """Whose rollups: a deployment's (its key prefix), else every deployment's of the model (livedata's rule)."""
    if deployment is None:
        return "model = ?", [model]
    return "deployment = ? AND model = ?", [deployment, model]


def chart_range(end: float, minutes: float, buckets: int) -> tuple[int, int, int]:
    """(start, end, bucket width) in whole seconds of a chart of `buckets` buckets over the last `minutes` before
    `end`, on rollup boundaries: the end is the next boundary after `end` (the current bucket is charted), the
    width the requested one rounded up to a multiple of the rollup's 5 s."""
    width = max(1, math.ceil(minutes * 60.0 / buckets / ROLLUP_SECONDS - 1e-9)) * ROLLUP_SECONDS
    stop = (int(end // ROLLUP_SECONDS) + 1) * ROLLUP_SECONDS
    return stop - width * buckets, stop, width


def request_series(
    conn: sqlite3.Connection,
    model: str,
    *,
    start: int,
    width: int,
    buckets: int,
    deployment: str | None = None,
    version: str | None = None,
    now: float | None = None,
) -> dict:
    """monitoring/series.request_series's answer from rollups: requests/s, errors/s, error rate and latency
    p50/p95/p99 per chart bucket of `width` seconds from `start` (both on rollup boundaries: `chart_range`).
    With `now` inside the last bucket, its rates are over the part of it that has passed (at least a second):
    the current bucket's rate is the rate now, not a share of it."""
    where, args = _scope(model, deployment)
    if version is not None:
        where, args = where + " AND version = ?", [*args, version]
    stop = start + width * buckets
    found = conn.execute(
        f"SELECT (bucket - ?) / ?, sum(requests), sum(errors), min(latency_min_ms), max(latency_max_ms), "
        f"group_concat(latency_bins, ' ') FROM request_rollup WHERE {where} AND bucket >= ? AND bucket < ? "
        "GROUP BY 1",
        [int(start), int(width), *args, int(start), int(stop)],
    ).fetchall()
    n = np.zeros(buckets, np.int64)
    errors = np.zeros(buckets, np.int64)
    lo = np.zeros(buckets)
    hi = np.zeros(buckets)
    hist = np.zeros((buckets, N_BINS), np.int64)
    for i, count, failed, fastest, slowest, text in found:
        n[i], errors[i], lo[i], hi[i] = count, failed, fastest, slowest
        # "bin:count bin:count ...": parsed in C (a week's chart holds ~2 million pairs; str.split took 0.8 s)
        pairs = np.fromstring(text.replace(":", " "), dtype=np.int64, sep=" ").reshape(-1, 2)
        hist[i] = np.bincount(pairs[:, 0], weights=pairs[:, 1], minlength=N_BINS).astype(np.int64)
    percentiles = {q: percentile_from_bins(hist, lo, hi, q) for q in (50, 95, 99)}
    w = np.full(buckets, float(width))
    last = start + width * (buckets - 1)
    if now is not None and last <= now < stop:
        w[-1] = max(float(now) - last, 1.0)
    return {
        "t": [float(start + b * width) for b in range(buckets)],
        "rate": (n / w).tolist(),
        "error_rate": [float(errors[b]) / int(n[b]) if n[b] else None for b in range(buckets)],
        "errors_per_s": (errors / w).tolist(),
        "p50_ms": percentiles[50],
        "p95_ms": percentiles[95],
        "p99_ms": percentiles[99],
        "requests": n.tolist(),
        "bucket_s": float(width),
    }


def percentile_from_bins(hist: np.ndarray, lowest: np.ndarray, highest: np.ndarray, q: float) -> list[float | None]:
    """The q-th percentile of each row's histogram (None for an empty row), as NumPy's linear method reads it
    from sorted values, each value placed by its rank inside its bin (geometric, between the bin's edges)
    and kept within the row's smallest and largest latency: exact when a bucket holds one distinct latency,
    otherwise within one bin. Every row at once."""
    hist = np.atleast_2d(np.asarray(hist, np.int64))
    lowest = np.asarray(lowest, np.float64).reshape(-1)
    highest = np.asarray(highest, np.float64).reshape(-1)
    total = hist.sum(axis=1)
    full = total > 0
    h = np.maximum(total - 1, 0) * q / 100.0
    k = np.floor(h)
    below = _ranked(hist, k, lowest, highest)
    above = _ranked(hist, np.minimum(k + 1, np.maximum(total - 1, 0)), lowest, highest)
    value = below + (h - k) * (above - below)
    return [float(v) if ok else None for v, ok in zip(value.tolist(), full.tolist())]


_LOWER = np.concatenate([[-np.inf], _EDGES])  # bin b holds [_LOWER[b], _UPPER[b])
_UPPER = np.concatenate([_EDGES, [np.inf]])


def _ranked(hist: np.ndarray, rank: np.ndarray, lowest: np.ndarray, highest: np.ndarray) -> np.ndarray:
    """The estimated rank-th smallest value (0-based) of each row's histogram."""
    cum = np.cumsum(hist, axis=1)
    b = (cum > rank[:, None]).argmax(axis=1)
    rows = np.arange(hist.shape[0])
    before = np.where(b > 0, cum[rows, np.maximum(b - 1, 0)], 0)
    count = np.maximum(hist[rows, b], 1)
    lo = np.maximum(_LOWER[b], lowest)
    hi = np.minimum(_UPPER[b], highest)
    frac = (rank - before + 0.5) / count
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        inside = np.where(lo > 0, lo * (hi / np.where(lo > 0, lo, 1)) ** frac, lo + (hi - lo) * frac)
    value = np.where(hi <= lo, lo, inside)
    return np.clip(np.nan_to_num(value), lowest, highest)


def logged_rows(
    conn: sqlite3.Connection, model: str, version: str, *, deployment: str | None = None
) -> tuple[int, int]:
    """(input rows of answered requests of `model` `version` in the rollups kept, the newest request_log id they
    count): the monitor's window count without reading the raw rows."""
    where, args = _scope(model, deployment)
    total, newest = conn.execute(
        f"SELECT COALESCE(sum(input_rows), 0), COALESCE(max(last_id), 0) FROM request_rollup "
        f"WHERE {where} AND version = ?",
        [*args, str(version)],
    ).fetchone()
    return int(total), int(newest)


def class_counts(
    conn: sqlite3.Connection, model: str, *, since: float, deployment: str | None = None, version: str | None = None
) -> dict[str, int]:
    """Predicted classes and their counts since `since` (requests whose predictions were labels)."""
    where, args = _scope(model, deployment)
    if version is not None:
        where, args = where + " AND version = ?", [*args, version]
    out: dict[str, int] = {}
    for (text,) in conn.execute(
        f"SELECT classes FROM request_rollup WHERE {where} AND bucket >= ? AND classes IS NOT NULL",
        [*args, int(since // ROLLUP_SECONDS) * ROLLUP_SECONDS],
    ):
        for k, c in orjson.loads(text).items():
            out[k] = out.get(k, 0) + c
    return out


def prune(conn: sqlite3.Connection, deployment: str | None, before: float) -> int:
    """Delete a deployment's rollups of buckets that ended before `before`; how many went."""
    cut = int(before // ROLLUP_SECONDS) * ROLLUP_SECONDS - ROLLUP_SECONDS
    return max(
        conn.execute(
            "DELETE FROM request_rollup WHERE deployment = ? AND bucket <= ?", (deployment or "", cut)
        ).rowcount,
        0,
    )
