"""Reference data profile: per-feature quantile bins, counts and moments, plus the prediction distribution.

Stored with the model at training time and compared with live traffic by the drift monitor. Pure NumPy
and cheap to import: the model server imports monitoring, so nothing here may pull in the pipeline,
deploy, MLflow or scikit-learn.

Speed: each feature is sorted once, and every statistic is read from the sorted values. The features
are sorted as contiguous rows of a transposed copy (NumPy's SIMD sort works on contiguous rows, which
``np.sort(X, axis=0)`` is not), and the bin searches run for all features at once.

Conventions: non-finite values (NaN, +/-inf) count as missing and are left out of bins and moments;
``std`` is the population standard deviation (ddof=0); bin ``i`` holds values in
``[edge[i], edge[i+1])`` except the last bin, which also holds ``edge[n_bins]`` (the maximum). Repeated
edges (a discrete or constant column) give empty bins; a constant column puts all its rows in the last bin.
A column with no finite value has empty ``bin_edges``/``counts``/``quantiles`` and ``None`` moments.

``quantiles`` (optional, added within version 1; older profiles lack it) holds the 0th..100th
percentiles of each column: the drift monitor draws the reference CDF through them for KS and
Wasserstein, which ten bins are too coarse for (the tail bins alone would bias both).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from aidevops_ext.errors import ConfigError, DataError

__all__ = [
    "PROFILE_VERSION",
    "bin_counts",
    "build_profile",
    "category_labels",
    "profile_from_dict",
    "summarize_numeric",
]

PROFILE_VERSION = 1  # what build_profile writes (numeric features only)
READABLE_VERSION = 2  # frameprofile.build_frame_profile writes 2: features may also be categories
_BLOCK_BYTES = 32 * 1024 * 1024  # float64 scratch per block of features when computing variances
N_QUANTILES = 100  # percentiles stored per column: 101 points, 0th..100th


# --------------------------------------------------------------------------- sorted-row machinery


def _sorted_rows(X: np.ndarray) -> np.ndarray:
    """Features as contiguous rows, each sorted ascending (NaN last, as np.sort puts it)."""
    S = X.T.copy(order="C")
    S.sort(axis=1)
    return S


def _search_rows(
    S: np.ndarray, targets: np.ndarray, lo: np.ndarray, hi: np.ndarray, side: str, rows: np.ndarray | None = None
) -> np.ndarray:
    """np.searchsorted of targets[k, i] in S[rows[i], lo[i]:hi[i]], for every k and i at once (absolute index)."""
    rows = np.arange(S.shape[0]) if rows is None else rows
    k = targets.shape[0]
    shape = (k, len(rows))
    left = np.broadcast_to(lo, shape).astype(np.int64)
    right = np.broadcast_to(hi, shape).astype(np.int64)
    rows2 = np.broadcast_to(rows, shape)
    last = max(S.shape[1] - 1, 0)
    # plain bisection, vectorized: ~log2(n) rounds of one gather each instead of a Python loop per feature
    while True:
        active = left < right
        if not active.any():
            return left
        mid = (left + right) // 2
        v = S[rows2, np.minimum(mid, last)]
        go_right = (v < targets) if side == "left" else (v <= targets)
        go_right &= active
        left = np.where(go_right, mid + 1, left)
        right = np.where(go_right | ~active, right, mid)


def _finite_ranges(S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[lo, hi) of the finite values in each sorted row: -inf sorts first, +inf then NaN last."""
    n_feat, n = S.shape
    lo = np.zeros(n_feat, dtype=np.int64)
    hi = np.full(n_feat, n, dtype=np.int64)
    if n == 0 or S.dtype.kind != "f":
        return lo, hi
    dirty = ~(np.isfinite(S[:, 0]) & np.isfinite(S[:, -1]))  # only the ends can be non-finite
    if dirty.any():
        idx = np.flatnonzero(dirty)
        zeros, full = np.zeros(len(idx), np.int64), np.full(len(idx), n, np.int64)
        # "v <= -inf" is true only for -inf; "v < inf" is false for +inf and NaN alike
        lo[idx] = _search_rows(S, np.full((1, len(idx)), -np.inf), zeros, full, "right", rows=idx)[0]
        hi[idx] = _search_rows(S, np.full((1, len(idx)), np.inf), zeros, full, "left", rows=idx)[0]
    return lo, hi


def _moments(S: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population std of each row's finite slice, accumulated in float64, two passes."""
    n_feat, n = S.shape
    m = hi - lo
    mean = np.full(n_feat, np.nan)
    std = np.full(n_feat, np.nan)
    clean = (lo == 0) & (hi == n) & (m > 0)
    if clean.any():
        block = max(1, min(n_feat, _BLOCK_BYTES // max(1, 8 * n)))
        # one scratch buffer reused for every block: fresh large allocations cost page faults each time
        buf = np.empty((block, n), dtype=np.float64)
        for start in range(0, n_feat, block):
            stop = min(start + block, n_feat)
            if not clean[start:stop].any():
                continue
            D = buf[: stop - start]
            np.copyto(D, S[start:stop])
            mu = D.mean(axis=1)
            D -= mu[:, None]
            sd = np.sqrt(np.einsum("ij,ij->i", D, D) / max(n, 1))
            keep = clean[start:stop]
            mean[start:stop][keep] = mu[keep]
            std[start:stop][keep] = sd[keep]
    dirty = np.flatnonzero(~clean & (m > 0))
    if len(dirty):
        row_buf = np.empty(n, dtype=np.float64)
    for j in dirty:  # rows with missing values: their finite values are one contiguous slice
        x = S[j, lo[j] : hi[j]]
        mu = x.sum(dtype=np.float64) / m[j]
        d = row_buf[: m[j]]
        np.subtract(x, mu, out=d)
        mean[j] = mu
        std[j] = np.sqrt(d @ d / m[j])
    return mean, std


def _quantiles(S: np.ndarray, lo: np.ndarray, hi: np.ndarray, n: int) -> np.ndarray:
    """Quantiles at levels 0, 1/n, ..., 1 (linear interpolation, as np.quantile), shape (n + 1, rows)."""
    n_feat = S.shape[0]
    m = hi - lo
    q = np.linspace(0.0, 1.0, n + 1)[:, None]
    pos = lo + q * np.maximum(m - 1, 0)  # (n + 1, n_feat) fractional positions into the sorted rows
    i0 = np.floor(pos).astype(np.int64)
    i1 = np.minimum(i0 + 1, np.maximum(hi - 1, 0))
    last = max(S.shape[1] - 1, 0)
    rows = np.arange(n_feat)
    a = S[rows, np.minimum(i0, last)].astype(np.float64)
    b = S[rows, np.minimum(i1, last)].astype(np.float64)
    edges = a + (pos - i0) * (b - a)
    return np.maximum.accumulate(edges, axis=0)  # rounding must never make edges decrease


def _edges_and_counts(S: np.ndarray, lo: np.ndarray, hi: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Quantile edges (linear interpolation, as np.quantile) and the count in each bin, for every row."""
    edges = _quantiles(S, lo, hi, n_bins)
    inner = _search_rows(S, edges[1:-1], lo, hi, "left")
    bounds = np.concatenate([lo[None, :], inner, hi[None, :]])
    return edges.T, np.diff(bounds, axis=0).T


def _as_float_matrix(X: Any) -> np.ndarray:
    dtypes = getattr(X, "dtypes", None)
    if dtypes is not None and np.ndim(dtypes) == 1:  # a DataFrame: mixed numeric columns would become object
        bad = [str(c) for c, t in zip(X.columns, dtypes) if getattr(t, "kind", "O") not in "biuf"]
        if bad:
            raise DataError(f"columns {bad[:10]} are not numeric; profile numeric features only (encode the others).")
        X = np.asarray(X, dtype=np.float64)
    a = np.asarray(X)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise DataError(f"X must be a 2-D array (rows x features), got shape {a.shape}.")
    if a.dtype.kind == "b":
        a = a.astype(np.float32)
    elif a.dtype.kind in "iu":
        a = a.astype(np.float64)
    elif a.dtype.kind != "f":
        raise DataError(f"X has dtype {a.dtype}; profile numeric features only (encode the others first).")
    return a


def _summaries(S: np.ndarray, n_rows: int, n_bins: int) -> list[dict]:
    lo, hi = _finite_ranges(S)
    edges, counts = _edges_and_counts(S, lo, hi, n_bins)
    mean, std = _moments(S, lo, hi)
    quantiles = _quantiles(S, lo, hi, N_QUANTILES).T
    m = hi - lo
    out = []
    for j in range(S.shape[0]):
        has = bool(m[j] > 0)
        out.append(
            {
                "bin_edges": edges[j].tolist() if has else [],
                "counts": counts[j].tolist() if has else [],
                "mean": float(mean[j]) if has else None,
                "std": float(std[j]) if has else None,
                "min": float(S[j, lo[j]]) if has else None,
                "max": float(S[j, hi[j] - 1]) if has else None,
                "missing_rate": float((n_rows - m[j]) / n_rows) if n_rows else 0.0,
                "quantiles": quantiles[j].tolist() if has else [],
            }
        )
    return out


# --------------------------------------------------------------------------- public API


def category_labels(values: Any) -> list[str]:
    """The string a category value is stored and compared as (bools as True/False, numbers as written).

    Profiles (frameprofile) and drift (drift) both label categories through this, so a value logged
    live matches the reference's label for it whatever type JSON gave it.
    """
    return [v if isinstance(v, str) else str(v) for v in values]


def summarize_numeric(values: Any, n_bins: int = 10) -> dict:
    """Quantile bins, counts, moments and missing rate of one numeric column (JSON-able)."""
    a = _as_float_matrix(np.asarray(values).reshape(-1, 1))
    if a.shape[0] == 0:
        raise DataError("values is empty; a summary needs data.")
    return _summaries(_sorted_rows(a), a.shape[0], _check_bins(n_bins))[0]


def _check_bins(n_bins: Any) -> int:
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ConfigError(f"n_bins must be a positive integer, got {n_bins!r}.")
    return int(n_bins)


def _prediction_summary(predictions: Any, n_bins: int, task: str | None) -> dict:
    p = np.asarray(predictions)
    if p.ndim == 2 and p.shape[1] == 1:
        p = p[:, 0]
    if p.ndim != 1:
        raise DataError(f"predictions must be 1-D (one per row), got shape {p.shape}; pass predict()'s output.")
    if task is None:
        task = "regression" if p.dtype.kind == "f" else "classification"
    if task == "regression":
        return {"task": "regression", "n": int(len(p)), **summarize_numeric(p, n_bins)}
    if task != "classification":
        raise ConfigError(f"task={task!r} is not valid; use 'classification', 'regression' or None to infer it.")
    classes, counts = np.unique(p, return_counts=True)
    total = int(counts.sum())
    return {
        "task": "classification",
        "n": total,
        "classes": classes.tolist(),  # numpy scalars -> plain int/str/bool for JSON
        "counts": counts.tolist(),
        "frequencies": (counts / total).tolist() if total else [],
    }


def build_profile(
    X: Any,
    feature_names: Sequence[str] | None = None,
    predictions: Any = None,
    n_bins: int = 10,
    task: str | None = None,
) -> dict:
    """JSON-able reference profile of the feature matrix X (and of the predictions, if given).

    `predictions` need not come from X's rows: pipelines pass the model's predictions on the
    validation split, which show the distribution unseen data gets, unlike fitted training rows.
    """
    n_bins = _check_bins(n_bins)
    if feature_names is None and hasattr(X, "columns"):  # a DataFrame: keep its column names
        feature_names = [str(c) for c in X.columns]
    A = _as_float_matrix(X)
    n_rows, n_feat = A.shape
    if n_rows == 0:
        raise DataError("X has no rows; a reference profile needs data.")
    names = [f"x{i}" for i in range(n_feat)] if feature_names is None else [str(n) for n in feature_names]
    if len(names) != n_feat:
        raise DataError(f"X has {n_feat} columns but {len(names)} feature names were given; pass one per column.")
    features = [{"name": name, **summary} for name, summary in zip(names, _summaries(_sorted_rows(A), n_rows, n_bins))]
    return {
        "profile_version": PROFILE_VERSION,
        "n_rows": int(n_rows),
        "n_bins": n_bins,
        "features": features,
        "predictions": None if predictions is None else _prediction_summary(predictions, n_bins, task),
    }


def bin_counts(X: Any, profile: dict) -> np.ndarray:
    """Counts of new rows in each reference bin, shape (n_features, n_bins); out-of-range values go to the end bins."""
    prof = profile_from_dict(profile)
    A = _as_float_matrix(X)
    feats = prof["features"]
    if A.shape[1] != len(feats):
        raise DataError(f"X has {A.shape[1]} columns but the profile has {len(feats)} features; pass the same columns.")
    n_bins = prof["n_bins"]
    S = _sorted_rows(A)
    lo, hi = _finite_ranges(S)
    out = np.zeros((len(feats), n_bins), dtype=np.int64)
    usable = np.array([len(f["bin_edges"]) == n_bins + 1 for f in feats], dtype=bool)
    if not usable.any():
        return out
    edges = np.array([f["bin_edges"] for f, u in zip(feats, usable) if u], dtype=np.float64).T
    idx = np.flatnonzero(usable)
    inner = _search_rows(S, edges[1:-1], lo[idx], hi[idx], "left", rows=idx)
    bounds = np.concatenate([lo[idx][None, :], inner, hi[idx][None, :]])
    out[idx] = np.diff(bounds, axis=0).T
    return out


def profile_from_dict(data: Any) -> dict:
    """Check that data is a well-formed profile (e.g. read back from JSON) and return it."""

    def bad(problem: str) -> DataError:
        return DataError(f"the data profile is malformed: {problem}; rebuild it with build_profile.")

    if not isinstance(data, dict):
        raise bad(f"expected a dict, got {type(data).__name__}")
    version = data.get("profile_version")
    if not isinstance(version, int) or version < 1:
        raise bad("profile_version is missing")
    if version > READABLE_VERSION:
        raise DataError(
            f"the data profile has version {version}, newer than the {READABLE_VERSION} this aidevops reads; "
            "upgrade aidevops."
        )
    n_bins = data.get("n_bins")
    if not isinstance(n_bins, int) or n_bins < 1 or not isinstance(data.get("n_rows"), int):
        raise bad("n_rows or n_bins is missing")
    feats = data.get("features")
    if not isinstance(feats, list):
        raise bad("features is not a list")
    for i, f in enumerate(feats):
        if not isinstance(f, dict) or not isinstance(f.get("name"), str):
            raise bad(f"feature {i} has no name")
        if f.get("kind") == "category":
            cats, counts = f.get("categories"), f.get("counts")
            if not isinstance(cats, list) or not isinstance(counts, list) or len(cats) != len(counts):
                raise bad(f"category feature {f['name']!r} lacks categories or counts of the same length")
            continue
        edges, counts = f.get("bin_edges"), f.get("counts")
        if not isinstance(edges, list) or not isinstance(counts, list):
            raise bad(f"feature {f['name']!r} lacks bin_edges or counts")
        if edges and (len(edges) != n_bins + 1 or len(counts) != n_bins):
            raise bad(f"feature {f['name']!r} has {len(edges)} edges and {len(counts)} counts for {n_bins} bins")
        if edges and any(b < a for a, b in zip(edges, edges[1:])):
            raise bad(f"feature {f['name']!r} has decreasing bin edges")
        qs = f.get("quantiles")  # optional: profiles written before it existed lack it
        if qs is not None and (not isinstance(qs, list) or len(qs) == 1 or any(b < a for a, b in zip(qs, qs[1:]))):
            raise bad(f"feature {f['name']!r} has malformed quantiles")
    return data
