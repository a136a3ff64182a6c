"""Live model quality: ground-truth labels (feedback) joined to logged requests, over sliding windows.

Windows are by *request* time, so a label that arrives late counts toward the window of the request
it labels. Every window is evaluated "as of" a time `now`: only labels known by then count, so the
same call gives the same answer later (reproducible panels and alerts), and a window reports how
many of its requests still await a label (`pending`, `label_rate`). `min_age` leaves the newest
requests out until their labels have had time to arrive, for when labels are slow and slow labels
are not a random sample (e.g. disputes arrive late and are mostly errors).

Accuracy comes with a Wilson interval (good coverage even near 0 or 1 and at small n); MAE and RMSE
with a percentile bootstrap (seeded: the same data gives the same interval), or a normal interval
for large windows where the bootstrap would be slow and the CLT is accurate. Results are plain dicts
whose keys are the metric names alert rules read.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict

import numpy as np
from typing_extensions import Unpack

from aidevops_ext.errors import ConfigError, DataError

from .defaults import DEFAULT_MIN_LABELS
from .stats import normal_quantile, wilson_interval

__all__ = [
    "DEFAULT_MIN_LABELS",
    "Joined",
    "accuracy_window",
    "join_feedback",
    "quality_window",
    "quality_windows",
    "regression_window",
]

_BOOTSTRAP_MAX_N = 20_000  # above this, interval="auto" uses the normal interval
_BOOTSTRAP_CHUNK = 2_000_000  # resampled indices held at once

REQUEST_FIELDS = ("request_id", "timestamp", "prediction")
FEEDBACK_FIELDS = ("request_id", "label", "label_timestamp")


@dataclass(frozen=True)
class Joined:
    """Logged requests in request-time order, each with its label (None) and label time (NaN) if any."""

    request_id: np.ndarray  # object
    timestamp: np.ndarray  # float64 seconds, ascending
    prediction: np.ndarray  # object
    label: np.ndarray  # object; None where no label arrived
    label_timestamp: np.ndarray  # float64 seconds; NaN where no label arrived
    unmatched_feedback: int = 0  # labels for request ids not in the log (sampled out, or not logged yet)
    superseded_feedback: int = 0  # earlier labels replaced by a later one for the same request
    duplicate_requests: int = 0  # earlier log entries replaced by a later one with the same id

    @property
    def n_labelled(self) -> int:
        """Requests that have a label (whenever it arrived)."""
        return int(np.count_nonzero(~np.isnan(self.label_timestamp)))


# --------------------------------------------------------------------------- input shaping


def _seconds(v: Any) -> float:
    if isinstance(v, datetime):
        return v.timestamp()
    if isinstance(v, np.datetime64):
        return float(v.astype("datetime64[ns]").astype(np.int64)) / 1e9
    if isinstance(v, str):
        try:
            return datetime.fromisoformat(v).timestamp()
        except ValueError:
            raise DataError(f"timestamp {v!r} is not ISO 8601; send epoch seconds or an ISO 8601 time.") from None
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v):
        raise DataError(f"timestamp {v!r} is not a time; send epoch seconds or an ISO 8601 time.")
    return float(v)


def _numeric(values: Any) -> bool:
    """A numeric array of finite epoch seconds (the fast path: no per-value conversion)."""
    return isinstance(values, np.ndarray) and values.dtype.kind in "iuf" and bool(np.isfinite(values).all())


def _columns(data: Any, fields: tuple[str, ...], what: str) -> list[list]:
    """Columns from a mapping of columns or from records (tuples in field order, or mappings)."""
    if isinstance(data, Mapping):
        lacking = [f for f in fields if f not in data]
        if lacking:
            raise DataError(f"{what} lacks columns {lacking}; give {list(fields)}.")
        given = [data[f] if isinstance(data[f], np.ndarray) else list(data[f]) for f in fields]
        if len({len(c) for c in given}) > 1:
            raise DataError(f"{what} columns {list(fields)} have different lengths; give one value per record.")
        return given
    if isinstance(data, (list, tuple)) and all(type(rec) is tuple and len(rec) == len(fields) for rec in data):
        return [list(c) for c in zip(*data)] if data else [[] for _ in fields]  # tuples in field order: transposed
    cols: list[list] = [[] for _ in fields]
    for i, rec in enumerate(data if isinstance(data, Iterable) else ()):
        if isinstance(rec, Mapping):
            try:
                vals = [rec[f] for f in fields]
            except KeyError as e:
                raise DataError(f"{what} record {i} lacks {e.args[0]!r}; give {list(fields)}.") from None
        else:
            vals = list(rec)
            if len(vals) != len(fields):
                raise DataError(f"{what} record {i} has {len(vals)} values; give ({', '.join(fields)}).")
        for c, v in zip(cols, vals):
            c.append(v)
    return cols


def _object_array(values: list) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values  # element by element: lists or tuples inside stay whole
    return out


def join_feedback(requests: Any, feedback: Any) -> Joined:
    """Join labels to logged requests by request id; the latest label (by label time) of a request wins.

    `requests`: (request_id, timestamp, prediction) records or a mapping of those columns;
    `feedback`: (request_id, label, label_timestamp) likewise. Times: epoch seconds, datetimes or ISO 8601.
    """
    rid, ts, pred = _columns(requests, REQUEST_FIELDS, "requests")
    row_of: dict[Any, int] = {}
    for i, r in enumerate(rid):
        row_of[r] = i  # a repeated id: the later log entry wins
    keep = sorted(row_of.values())
    times = np.array([_seconds(t) for t in ts] if not _numeric(ts) else ts, dtype=np.float64)[keep]
    order = np.argsort(times, kind="stable")
    keep = [keep[i] for i in order]
    times = times[order]
    pos = {rid[i]: p for p, i in enumerate(keep)}

    labels: list[Any] = [None] * len(keep)
    label_at: list[float | None] = [None] * len(keep)
    unmatched = superseded = 0
    fid, flabel, fts = _columns(feedback, FEEDBACK_FIELDS, "feedback")
    for r, lab, t in zip(fid, flabel, fts):
        p = pos.get(r)
        if p is None:
            unmatched += 1
            continue
        t = t if type(t) is float and math.isfinite(t) else _seconds(t)
        known = label_at[p]
        if known is not None:
            superseded += 1
            if t < known:  # an older correction arriving out of order loses to the newer label
                continue
        labels[p], label_at[p] = lab, t
    label_ts = np.array([np.nan if t is None else t for t in label_at], dtype=np.float64)
    return Joined(
        request_id=_object_array([rid[i] for i in keep]),
        timestamp=times,
        prediction=_object_array([pred[i] for i in keep]),
        label=_object_array(labels),
        label_timestamp=label_ts,
        unmatched_feedback=unmatched,
        superseded_feedback=superseded,
        duplicate_requests=len(rid) - len(keep),
    )


# --------------------------------------------------------------------------- windows


def _positive(name: str, v: Any, integer: bool = False, zero_ok: bool = False) -> Any:
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, kinds) or not math.isfinite(v) or v < 0 or (v == 0 and not zero_ok):
        raise ConfigError(f"{name} must be a {'positive integer' if integer else 'positive number'}, got {v!r}.")
    return v


def _select(
    j: Joined, last: int | None, seconds: float | None, now: Any, min_age: float
) -> tuple[np.ndarray, int, dict]:
    """Indices of the labelled requests in the window, the number of requests in it, and its bounds."""
    _positive("last", last, integer=True)
    _positive("seconds", seconds)
    _positive("min_age", min_age, zero_ok=True)
    if now is None:  # as of the newest event: deterministic, unlike the wall clock
        stamps = np.concatenate([j.timestamp, j.label_timestamp[~np.isnan(j.label_timestamp)]])
        as_of = float(stamps.max()) if len(stamps) else None
    else:
        as_of = _seconds(now)
    info = {"last": last, "seconds": seconds, "min_age": min_age, "as_of": as_of, "start": None, "end": None}
    if as_of is None:
        return np.zeros(0, np.int64), 0, info
    end = as_of - min_age
    hi = int(np.searchsorted(j.timestamp, end, side="right"))  # requests at or before the end
    lo = int(np.searchsorted(j.timestamp, end - seconds, side="right")) if seconds is not None else 0
    known = ~np.isnan(j.label_timestamp[lo:hi]) & (j.label_timestamp[lo:hi] <= as_of)
    idx = lo + np.flatnonzero(known)
    if last is not None and len(idx) > last:
        idx = idx[-last:]
        lo = int(np.searchsorted(j.timestamp, j.timestamp[idx[0]], side="left"))  # requests since the first kept
    info.update(
        start=float(end - seconds) if seconds is not None else (float(j.timestamp[lo]) if hi > lo else None), end=end
    )
    return idx, hi - lo, info


def _base(metric: str, idx: np.ndarray, requests: int, info: dict, min_labels: int, confidence: float) -> dict:
    n = int(len(idx))
    return {
        "metric": metric,
        "status": "ok" if n >= min_labels else "insufficient data",
        "labelled": n,
        "requests": requests,
        "pending": requests - n,
        "label_rate": n / requests if requests else None,
        "confidence": confidence,
        "min_labels": min_labels,
        "window": info,
    }


def _check_common(confidence: Any, min_labels: Any) -> None:
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 < confidence < 1:
        raise ConfigError(f"confidence must be a number in (0, 1), e.g. 0.95, got {confidence!r}.")
    _positive("min_labels", min_labels, integer=True)


class WindowArgs(TypedDict, total=False):
    """Which labelled requests a quality window covers and how sure its interval is (defaults in _open_window):
    the last `last` labelled requests and/or those of the last `seconds` before `now`, each at least `min_age`
    seconds old; `confidence` of the interval; `min_labels` below which the status is not "ok"."""

    last: int | None
    seconds: float | None
    now: Any
    min_age: float
    confidence: float
    min_labels: int


def _open_window(
    metric: str,
    joined: Joined,
    *,
    last: int | None = None,
    seconds: float | None = None,
    now: Any = None,
    min_age: float = 0.0,
    confidence: float = 0.95,
    min_labels: int = DEFAULT_MIN_LABELS,
) -> tuple[np.ndarray, dict]:
    """The indices of a window's labelled requests, and its result so far (counts, status, bounds)."""
    _check_common(confidence, min_labels)
    idx, requests, info = _select(joined, last, seconds, now, min_age)
    return idx, _base(metric, idx, requests, info, min_labels, confidence)


def accuracy_window(joined: Joined, **window: Unpack[WindowArgs]) -> dict:
    """Accuracy with a Wilson interval over the last `last` labelled requests and/or the last `seconds`."""
    idx, out = _open_window("accuracy", joined, **window)
    n = len(idx)
    correct = int(sum(1 for p, y in zip(joined.prediction[idx], joined.label[idx]) if _same(p, y)))
    out.update(correct=correct, accuracy=None, accuracy_lower=None, accuracy_upper=None, interval="wilson")
    if out["status"] == "ok":
        lo, hi = wilson_interval(correct, n, out["confidence"])
        out.update(accuracy=correct / n, accuracy_lower=float(lo), accuracy_upper=float(hi))
    return out


def _right_answers(joined: Joined) -> np.ndarray:
    """Whether each labelled request's prediction equals its label (False where unlabelled): compared once for
    a curve's many overlapping windows."""
    right = np.zeros(len(joined.timestamp), bool)
    for i in np.flatnonzero(~np.isnan(joined.label_timestamp)).tolist():
        right[i] = _same(joined.prediction[i], joined.label[i])
    return right


def _same(p: Any, y: Any) -> bool:
    try:
        return bool(p == y)
    except (TypeError, ValueError):  # arrays compare elementwise: a multi-output prediction is right only if all are
        return bool(np.array_equal(np.asarray(p), np.asarray(y)))


def regression_window(
    joined: Joined, *, interval: str = "auto", n_boot: int = 2000, seed: int = 0, **window: Unpack[WindowArgs]
) -> dict:
    """MAE and RMSE with intervals (bootstrap, or normal for large windows) over a window of labelled requests."""
    if interval not in ("auto", "bootstrap", "normal"):
        raise ConfigError(f"interval={interval!r} is not valid; use 'auto', 'bootstrap' or 'normal'.")
    _positive("n_boot", n_boot, integer=True)
    idx, out = _open_window("regression", joined, **window)
    confidence = out["confidence"]
    keys = ("mae", "mae_lower", "mae_upper", "rmse", "rmse_lower", "rmse_upper", "bias")
    out.update({k: None for k in keys})
    if out["status"] != "ok":
        out["interval"] = None
        return out
    try:
        err = np.asarray(list(joined.prediction[idx]), dtype=np.float64) - np.asarray(
            list(joined.label[idx]), dtype=np.float64
        )
    except (TypeError, ValueError):
        raise DataError(
            "predictions and labels must be numbers for MAE/RMSE; use accuracy_window for classes."
        ) from None
    if err.ndim != 1 or not np.isfinite(err).all():
        raise DataError("predictions and labels must be finite single numbers for MAE/RMSE.")
    ae, se = np.abs(err), err * err
    method = interval if interval != "auto" else ("bootstrap" if len(err) <= _BOOTSTRAP_MAX_N else "normal")
    if method == "bootstrap":
        (mae_lo, mae_hi), (mse_lo, mse_hi) = _bootstrap(np.stack([ae, se]), confidence, n_boot, seed)
    else:
        z = normal_quantile(0.5 + confidence / 2)
        sq = math.sqrt(len(err))
        mae_lo, mae_hi = ae.mean() - z * ae.std(ddof=1) / sq, ae.mean() + z * ae.std(ddof=1) / sq
        mse_lo, mse_hi = se.mean() - z * se.std(ddof=1) / sq, se.mean() + z * se.std(ddof=1) / sq  # delta method
    out.update(
        interval=method,
        mae=float(ae.mean()),
        mae_lower=float(max(mae_lo, 0.0)),
        mae_upper=float(mae_hi),
        rmse=float(math.sqrt(se.mean())),
        rmse_lower=float(math.sqrt(max(mse_lo, 0.0))),
        rmse_upper=float(math.sqrt(max(mse_hi, 0.0))),
        bias=float(err.mean()),
    )
    return out


def _bootstrap(values: np.ndarray, confidence: float, n_boot: int, seed: int) -> list[tuple[float, float]]:
    """Percentile-bootstrap intervals of the means of each row of values, one shared resampling."""
    n = values.shape[1]
    rng = np.random.default_rng(seed)
    means = np.empty((len(values), n_boot))
    step = max(1, _BOOTSTRAP_CHUNK // n)
    for s in range(0, n_boot, step):
        b = min(step, n_boot - s)
        idx = rng.integers(0, n, size=(b, n))
        for r, v in enumerate(values):
            means[r, s : s + b] = v[idx].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    return [tuple(np.percentile(m, [tail, 100 - tail])) for m in means]


def quality_windows(joined: Joined, task: str, moments: Iterable[float], **window: Any) -> list[dict]:
    """quality_window as of each of `moments` (in place of `now`): a curve over time. Classification windows
    count right answers from predictions compared with labels once, and take their intervals in one array pass."""
    if task != "classification":
        return [quality_window(joined, task, **window, now=at) for at in moments]
    right = _right_answers(joined)
    out = []
    for at in moments:
        idx, res = _open_window("accuracy", joined, **window, now=at)
        res.update(
            correct=int(np.count_nonzero(right[idx])),
            accuracy=None,
            accuracy_lower=None,
            accuracy_upper=None,
            interval="wilson",
        )
        out.append(res)
    ok = [res for res in out if res["status"] == "ok"]
    if ok:
        correct = np.array([res["correct"] for res in ok])
        lo, hi = wilson_interval(correct, np.array([res["labelled"] for res in ok]), ok[0]["confidence"])
        for res, lower, upper in zip(ok, lo.tolist(), hi.tolist()):
            res.update(accuracy=res["correct"] / res["labelled"], accuracy_lower=lower, accuracy_upper=upper)
    return out


def quality_window(joined: Joined, task: str, **window: Any) -> dict:
    """accuracy_window for task "classification", regression_window for "regression"."""
    if task == "classification":
        return accuracy_window(joined, **window)
    if task == "regression":
        return regression_window(joined, **window)
    raise ConfigError(f"task={task!r} is not valid; use 'classification' or 'regression'.")
