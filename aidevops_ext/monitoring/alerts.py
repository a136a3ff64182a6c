"""The pure state machine that evaluates alert rules (parsed by `rules.py`) on snapshots of live metrics.

Each evaluation reads one *snapshot*: a flat dict of metric -> number (or, for per-feature drift
metrics, feature -> number) built by `build_snapshot` from a drift report, a quality window and
request statistics. `evaluate_rules` is pure: it takes the previous state (JSON-able, persisted by
the caller) and returns the new one plus the fired/resolved transitions. A rule fires after
`for_windows` consecutive breaching windows and resolves after `resolve_windows` consecutive clear
ones. A metric that is missing or None (e.g. "insufficient data") changes nothing: an alert neither
fires nor resolves without evidence. A snapshot may carry a `window` id; evaluating the same window
twice counts it once.

Note on `accuracy_lower < 0.9`: it breaches unless the data show accuracy >= 0.9 with confidence, so
it also breaches on small windows; `accuracy_upper < 0.9` breaches only when accuracy is shown to be
below 0.9. Both are offered; windows below `min_labels` give None (no evidence either way).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np

from aidevops_ext.errors import ConfigError

from ..finite import is_finite_number
from .drift import DriftReport, PredictionDrift
from .rules import _OPS, FEATURE_METRICS, METRICS, MonitorConfig, Rule, parse_monitor, parse_rule
from .stats import wilson_interval

OK, FIRING, RESOLVED = "ok", "firing", "resolved"

__all__ = [
    "FEATURE_METRICS",
    "METRICS",
    "MonitorConfig",
    "Rule",
    "build_snapshot",
    "evaluate_rules",
    "parse_monitor",
    "parse_rule",
    "request_stats",
]

# --------------------------------------------------------------------------- snapshots


def request_stats(latency_ms: Any = None, errors: Any = None, *, confidence: float = 0.95) -> dict:
    """Request count, error rate (with a Wilson interval) and latency percentiles of a window of requests.

    `latency_ms`: one latency per request; `errors`: one flag per request (True = failed) or a count.
    """
    lat = np.asarray([] if latency_ms is None else latency_ms, dtype=np.float64).ravel()
    lat = lat[np.isfinite(lat)]
    if errors is None:
        n, k = len(lat), 0
    elif np.ndim(errors) == 0:
        n, k = len(lat), int(errors)
    else:
        e = np.asarray(errors).ravel().astype(bool)
        n, k = len(e), int(e.sum())
    out: dict[str, Any] = {
        "requests": n,
        "errors": k,
        "error_rate": None,
        "error_rate_lower": None,
        "error_rate_upper": None,
    }
    if n:
        lo, hi = wilson_interval(k, n, confidence)
        out.update(error_rate=k / n, error_rate_lower=float(lo), error_rate_upper=float(hi))
    names = ("latency_p50_ms", "latency_p90_ms", "latency_p95_ms", "latency_p99_ms")
    if len(lat):
        pct = np.percentile(lat, [50, 90, 95, 99])
        out.update(
            dict(zip(names, map(float, pct))), latency_mean_ms=float(lat.mean()), latency_max_ms=float(lat.max())
        )
    else:
        out.update(dict.fromkeys(names), latency_mean_ms=None, latency_max_ms=None)
    return out


def build_snapshot(
    *,
    drift: DriftReport | None = None,
    prediction: PredictionDrift | None = None,
    quality: Mapping[str, Any] | None = None,
    requests: Mapping[str, Any] | None = None,
    latency_ms: Any = None,
    errors: Any = None,
    window: Any = None,
) -> dict:
    """The flat metric dict rules read, from whichever parts are at hand (JSON-able).

    `quality`: an accuracy_window / regression_window result; `requests`: a request_stats result,
    or pass `latency_ms` / `errors` arrays to compute it here; `window`: an id for this window.
    """
    snap: dict[str, Any] = {"window": window}
    if drift is not None:
        ok = drift.status == "ok"
        for m in FEATURE_METRICS:
            snap[m] = drift.metric(m) if ok else dict.fromkeys(drift.metric(m))
        psis = [v for v in snap["psi"].values() if v is not None]
        n_drifted = len(drift.drifted)
        n_feat = max(len(drift.features), 1)
        snap.update(
            rows=drift.n_rows,
            drifted_features=n_drifted if ok else None,
            drifted_share=n_drifted / n_feat if ok else None,
            max_psi=max(psis) if psis else None,
        )
    if prediction is not None:
        ok = prediction.status == "ok"
        snap.update(
            prediction_psi=prediction.psi,
            prediction_pvalue=prediction.pvalue,
            prediction_effect=prediction.effect_size,
            prediction_drifted=(1.0 if prediction.drifted else 0.0) if ok else None,
        )
    if quality is not None:
        snap.update({k: quality.get(k) for k in METRICS if k in quality and k not in ("requests",)})
    if requests is None and (latency_ms is not None or errors is not None):
        requests = request_stats(latency_ms, errors)
    if requests is not None:
        snap.update({k: requests.get(k) for k in METRICS if k in requests})
    return snap


# --------------------------------------------------------------------------- evaluation


def _now(now: Any) -> float:
    if isinstance(now, datetime):
        return now.timestamp()
    if isinstance(now, bool) or not isinstance(now, (int, float)) or not math.isfinite(now):
        raise ConfigError(f"now must be epoch seconds or a datetime, got {now!r}.")
    return float(now)


def _measure(rule: Rule, snap: Mapping[str, Any]) -> tuple[float | None, list[str], bool | None]:
    """(value, breaching features, breach?) of a rule on a snapshot; breach None when there is no data."""
    cmp = _OPS[rule.op]
    raw = snap.get(rule.metric)
    if rule.per_feature:
        values = raw if isinstance(raw, Mapping) else {}
        if rule.feature is not None:
            values = {rule.feature: values.get(rule.feature)}
        have = {f: float(v) for f, v in values.items() if is_finite_number(v)}
        if not have:
            return None, [], None
        hits = [f for f, v in have.items() if cmp(v, rule.threshold)]
        worst = (max if rule.op in (">", ">=") else min)(have.values())  # the value nearest to breaching most
        return worst, hits, bool(hits)
    if not is_finite_number(raw):
        return None, [], None
    return float(raw), [], cmp(float(raw), rule.threshold)


def _initial(now: float) -> dict:
    return {"state": OK, "since": now, "breaches": 0, "clears": 0, "value": None, "features": [], "last_window": None}


def _event(rule: Rule, kind: str, st: dict, now: float) -> dict:
    value = st.get("value")
    shown = "no data" if value is None else f"{value:.4g}"
    if kind == "fired":
        where = f" on {', '.join(st['features'][:5])}" if st.get("features") else ""
        message = (
            f"{rule.name}: {rule.metric} {shown} {rule.op} {rule.threshold:g}{where} for {st['breaches']} window(s)"
        )
    else:
        message = f"{rule.name} resolved: {rule.metric} {shown} no longer {rule.op} {rule.threshold:g}"
    return {
        "rule": rule.name,
        "event": kind,
        "at": now,
        "metric": rule.metric,
        "op": rule.op,
        "threshold": rule.threshold,
        "value": value,
        "features": list(st.get("features") or []),
        "action": rule.action,
        "message": message,
    }


def evaluate_rules(
    rules: Sequence[Rule] | MonitorConfig,
    snapshot: Mapping[str, Any],
    previous_state: Mapping[str, Any] | None,
    now: Any,
) -> tuple[dict, list[dict]]:
    """One evaluation: (new state by rule name, fired/resolved events). Pure; the state is JSON-able."""
    if isinstance(rules, MonitorConfig):
        rules = rules.rules
    t = _now(now)
    prev = dict(previous_state or {})
    window = snapshot.get("window")
    state: dict[str, dict] = {}
    events: list[dict] = []
    for rule in rules:
        st = dict(prev.get(rule.name) or _initial(t))
        value, hits, breach = _measure(rule, snapshot)
        st.update(value=value, features=hits, no_data=breach is None)
        if breach is None or (window is not None and window == st.get("last_window")):
            state[rule.name] = st  # no evidence, or this window was already counted
            continue
        st["last_window"] = window
        if breach:
            st["breaches"], st["clears"] = st["breaches"] + 1, 0
            if st["state"] != FIRING and st["breaches"] >= rule.for_windows:
                st.update(state=FIRING, since=t)
                events.append(_event(rule, "fired", st, t))
        else:
            st["breaches"] = 0
            if st["state"] == FIRING:
                st["clears"] += 1
                if st["clears"] >= rule.resolve_windows:
                    st.update(state=RESOLVED, since=t, clears=0)
                    events.append(_event(rule, "resolved", st, t))
        state[rule.name] = st
    names = {r.name for r in rules}
    for name, st in prev.items():  # a rule dropped from the spec: close its alert rather than orphan it
        if name not in names and isinstance(st, Mapping) and st.get("state") == FIRING:
            events.append(
                {
                    "rule": name,
                    "event": "resolved",
                    "at": t,
                    "metric": None,
                    "op": None,
                    "threshold": None,
                    "value": None,
                    "features": [],
                    "action": None,
                    "message": f"{name} resolved: the rule was removed from the spec",
                }
            )
    return state, events
