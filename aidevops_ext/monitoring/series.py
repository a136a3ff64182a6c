"""Time series of live traffic for charts (the Monitor panel, notebooks): request rate, latency percentiles,
error rate per time bucket, and the prediction distribution of a window against the reference.

Pure NumPy over arrays the caller read from the request log; one sort and one pass per call, so a
chart over 100,000 logged requests costs milliseconds. The Monitor panel's chart does not read raw rows:
serving/rollups.py answers the same request series from the per-5-second rollups the server writes as it
logs (whatever the log's size); `request_series` here is the exact computation over rows a notebook holds.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from aidevops_ext.errors import ConfigError

MAX_BUCKETS = 1000


def request_series(
    ts: Any, latency_ms: Any, status: Any, *, buckets: int = 60, start: float | None = None, end: float | None = None
) -> dict:
    """Per time bucket: requests/s, errors/s (5xx), error rate, latency p50/p95/p99 (ms); empty buckets give None.

    Buckets split [start, end] evenly (default: the span of `ts`); `t` is each bucket's start (epoch seconds).
    """
    if isinstance(buckets, bool) or not isinstance(buckets, int) or not 1 <= buckets <= MAX_BUCKETS:
        raise ConfigError(f"buckets must be an integer between 1 and {MAX_BUCKETS}, got {buckets!r}.")
    t = np.asarray(ts, dtype=np.float64)
    lat = np.asarray(latency_ms, dtype=np.float64)
    code = np.asarray(status, dtype=np.int64)
    if not (len(t) == len(lat) == len(code)):
        raise ConfigError("ts, latency_ms and status need one value per request.")
    keys = ("t", "rate", "error_rate", "errors_per_s", "p50_ms", "p95_ms", "p99_ms", "requests")
    if not len(t):
        return {k: [] for k in keys} | {"bucket_s": None}
    lo = float(t.min()) if start is None else float(start)
    hi = float(t.max()) if end is None else float(end)
    width = max((hi - lo) / buckets, 1e-9)
    inside = (t >= lo) & (t <= hi)
    t, lat, code = t[inside], lat[inside], code[inside]
    idx = np.minimum(((t - lo) / width).astype(np.int64), buckets - 1)
    order = np.lexsort((lat, idx))  # by bucket, then latency: percentiles read straight from each run
    idx, lat_sorted, failed = idx[order], lat[order], code[order] >= 500
    counts = np.bincount(idx, minlength=buckets)
    errors = np.bincount(idx, weights=failed, minlength=buckets)
    bounds = np.concatenate([[0], np.cumsum(counts)])
    out: dict[str, list] = {k: [] for k in keys}
    for b in range(buckets):
        n = int(counts[b])
        out["t"].append(lo + b * width)
        out["requests"].append(n)
        out["rate"].append(n / width)
        out["errors_per_s"].append(float(errors[b]) / width)
        out["error_rate"].append(float(errors[b]) / n if n else None)
        run = lat_sorted[bounds[b] : bounds[b + 1]]
        for q, key in ((50, "p50_ms"), (95, "p95_ms"), (99, "p99_ms")):
            out[key].append(float(np.percentile(run, q)) if n else None)
    return out | {"bucket_s": width}


def prediction_distribution(predictions: Any, profile: dict | None) -> dict:
    """Shares of each predicted class in a window beside the reference's (classification), or histograms on the
    reference's bins (regression); {"task": None} when the profile holds no prediction distribution."""
    ref = (profile or {}).get("predictions") if isinstance(profile, dict) else None
    if not isinstance(ref, dict) or ref.get("task") not in ("classification", "regression"):
        return {"task": None}
    p = np.asarray(list(predictions))
    if ref["task"] == "classification":
        classes = [str(c) for c in ref.get("classes", [])]
        ref_counts = np.asarray(ref.get("counts", []), dtype=np.float64)
        live = {c: 0 for c in classes}
        other = 0
        for v in p.astype(str) if len(p) else []:
            if v in live:
                live[v] += 1
            else:
                other += 1
        n = max(len(p), 1)
        return {
            "task": "classification",
            "classes": classes,
            "reference": (ref_counts / max(ref_counts.sum(), 1)).tolist(),
            "live": [live[c] / n for c in classes],
            "unseen": other / n,
            "n": int(len(p)),
        }
    edges = np.asarray(ref.get("bin_edges", []), dtype=np.float64)
    ref_counts = np.asarray(ref.get("counts", []), dtype=np.float64)
    live_counts = (
        np.histogram(np.clip(p.astype(np.float64), edges[0], edges[-1]), bins=edges)[0]
        if len(p) and len(edges) > 1
        else np.zeros(max(len(edges) - 1, 0))
    )
    return {
        "task": "regression",
        "edges": edges.tolist(),
        "reference": (ref_counts / max(ref_counts.sum(), 1)).tolist(),
        "live": (live_counts / max(len(p), 1)).tolist(),
        "n": int(len(p)),
    }
