"""The server's live monitor: every few seconds, in a worker thread, drift and live quality of the active
model over its newest logged traffic, exposed as Prometheus gauges and on `GET /monitor`, with the
deployment's alert rules evaluated and their state kept in deploy.db.

Windows. Drift and quality read the newest `window` logged rows of the active version (a switch starts
a fresh window: the new version is judged on its own traffic). Alert rules advance once per *completed*
block of `window` rows — window id `"<version>:<blocks>"` — so "two windows" in a rule means two
disjoint blocks of traffic, however often the monitor refreshes. Request statistics (error rate,
latency) cover the requests of the same window.

The request path never waits for any of this: the monitor only reads the log the writer thread wrote.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import anyio
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ..monitoring.alerts import FIRING, evaluate_rules
from ..monitoring.alertstore import AlertStore
from ..monitoring.live import summarize_window
from ..monitoring.rules import MonitorConfig
from .livedata import logged_rows, read_feedback, read_window

log = logging.getLogger("aidevops.serving")


class LiveMonitor:
    """Refreshes `latest` (the summary `/monitor` returns) and the alert state; `run()` loops in the app's lifespan."""

    def __init__(
        self, server: Any, *, config: MonitorConfig | None = None, deployment: str | None = None, interval: float = 5.0
    ) -> None:
        self.server = server
        self.config = config or MonitorConfig()
        self.deployment = deployment
        self.interval = float(interval)
        self.db = server.requestlog.path
        self.alerts = AlertStore(self.db) if self.db and deployment else None
        self.latest: dict[str, Any] = {"status": "starting", "deployment": deployment}
        self._counts: dict[tuple[str, str], tuple[int, int]] = {}  # (model, version) -> (rows, last id)
        self._state: dict[str, dict] | None = None
        self._state_version: str | None = None  # the version `_state` counts windows of
        self._last_error = 0.0

    # ------------------------------------------------------------------ one pass (blocking)
    def refresh(self, now: float | None = None) -> dict[str, Any]:
        """Read the newest window, summarize it, evaluate the rules; returns the new summary."""
        now = time.time() if now is None else now
        model = self.server.slots.state.active
        cfg = self.config
        summary: dict[str, Any] = {
            "status": "ok",
            "deployment": self.deployment,
            "model": model.name,
            "version": model.version,
            "at": now,
            "window_rows": cfg.window,
            "settings": cfg.to_dict(),
        }
        if not self.db:
            summary.update(status="no request log", snapshot={}, alerts=[])
            self.latest = summary
            return summary
        blocks = self._blocks(model.name, model.version)
        window_id = f"{model.version}:{blocks}"
        mine = self.deployment
        win = read_window(
            self.db, model.name, model.version, rows=cfg.window, n_features=model.n_features, deployment=mine
        )
        feedback = (
            read_feedback(
                self.db, model.name, version=model.version, first_id=win.first_id, last_id=win.last_id, deployment=mine
            )
            if win.first_id is not None
            else []
        )
        result = summarize_window(
            rows=_profiled(win.frame, model.profile) if win.frame is not None else win.rows,
            row_predictions=win.row_predictions,
            profile=model.profile,
            task=model.task,
            config=cfg,
            prediction_ids=win.prediction_ids,
            predictions=win.predictions,
            prediction_ts=win.prediction_ts,
            feedback=feedback,
            latency_ms=win.latency_ms,
            failed=win.failed,
            window=window_id,
            now=now,
        )
        summary.update(result, window=window_id, completed_windows=blocks, logged_rows=win.n_rows)
        summary["alerts"] = (
            self._evaluate(result["snapshot"], model, now) if self.alerts is not None and cfg.rules else []
        )
        self.latest = summary
        return summary

    def _blocks(self, model: str, version: str) -> int:
        rows, last = self._counts.get((model, version), (0, 0))
        more, last = logged_rows(self.db, model, version, after_id=last, deployment=self.deployment)
        self._counts[(model, version)] = (rows + more, last)
        return (rows + more) // self.config.window

    def _evaluate(self, snapshot: dict, model: Any, now: float) -> list[dict]:
        assert self.alerts is not None and self.deployment is not None
        closing: list[dict] = []
        if self._state is None or self._state_version != model.version:  # a new version starts fresh (alertstore.py)
            self._state, closing = self.alerts.state_for_version(self.deployment, model.version, now)
            self._state_version = model.version
        state, events = evaluate_rules(self.config, snapshot, self._state, now)
        events = closing + events
        if events or state != self._state:
            ids = self.alerts.save(self.deployment, state, events, model=model.name, version=model.version)
            for ev, eid in zip(events, ids):
                log.warning("alert %s (#%s): %s", ev["event"], eid, ev["message"])
        self._state = state
        return [
            {
                "rule": r.name,
                "state": state[r.name]["state"],
                "since": state[r.name]["since"],
                "value": state[r.name].get("value"),
                "features": state[r.name].get("features") or [],
                "metric": r.metric,
                "op": r.op,
                "threshold": r.threshold,
                "action": r.action,
            }
            for r in self.config.rules
        ]

    # ------------------------------------------------------------------ the loop
    async def run(self) -> None:
        """Refresh every `interval` seconds until cancelled; a failing pass is logged (once a minute) and retried."""
        while True:
            try:
                await anyio.to_thread.run_sync(self.refresh)
            except Exception as exc:  # noqa: BLE001 - monitoring must never take the server down
                self.latest = {**self.latest, "status": "error", "error": f"{type(exc).__name__}: {exc}"}
                if time.monotonic() - self._last_error > 60:
                    self._last_error = time.monotonic()
                    log.warning("monitor pass failed: %s: %s", type(exc).__name__, exc)
            await asyncio.sleep(self.interval)


def _profiled(frame: Any, profile: dict | None) -> Any:
    """A DataFrame window's profiled columns in the profile's order; one the traffic lacked is all missing values."""
    features = (profile or {}).get("features") if isinstance(profile, dict) else None
    if not features:
        return frame
    names = [f.get("name") for f in features]
    have = {str(c): c for c in frame.columns}
    out = frame[[have[n] for n in names if n in have]].copy()
    out.columns = [str(c) for c in out.columns]
    for n in names:
        if n not in have:
            out[n] = None  # counts as a missing value: the drift report shows its missing rate jump
    return out[names]


class MonitorCollector(Collector):
    """Prometheus gauges from the monitor's latest summary (read at scrape time; nothing computed here)."""

    def __init__(self, monitor: LiveMonitor) -> None:
        self.monitor = monitor

    def collect(self):  # noqa: D102 - prometheus_client protocol
        s = self.monitor.latest
        base = [str(s.get("model") or ""), str(s.get("version") or "")]
        labels = ["model", "version"]
        g = {
            name: GaugeMetricFamily(f"aidevops_{name}", doc, labels=labels + _LABELLED_BY.get(name, []))
            for name, doc in _GAUGES.items()
        }
        snap = s.get("snapshot") or {}
        drift = s.get("drift") or {}
        ok = drift.get("status") == "ok"
        for f in drift.get("features", []) if ok else []:
            for key, name in (
                ("psi", "drift_psi"),
                ("ks_statistic", "drift_ks_statistic"),
                ("ks_pvalue", "drift_ks_pvalue"),
                ("wasserstein_std", "drift_wasserstein_std"),
            ):
                if f.get(key) is not None:
                    g[name].add_metric(base + [f["name"]], float(f[key]))
            g["drift_detected"].add_metric(base + [f["name"]], 1.0 if f.get("drifted") else 0.0)
        if ok:
            g["drift_features_drifted"].add_metric(base, float(len(drift.get("drifted", []))))
        g["monitor_window_rows"].add_metric(base, float(s.get("logged_rows") or 0))
        for key, name in (
            ("max_psi", "drift_max_psi"),
            ("prediction_psi", "prediction_drift_psi"),
            ("accuracy", "live_accuracy"),
            ("accuracy_lower", "live_accuracy_lower"),
            ("accuracy_upper", "live_accuracy_upper"),
            ("mae", "live_mae"),
            ("rmse", "live_rmse"),
            ("labelled", "live_labelled"),
            ("error_rate", "monitor_error_rate"),
            ("latency_p99_ms", "monitor_latency_p99_ms"),
        ):
            v = snap.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                g[name].add_metric(base, float(v))
        for a in s.get("alerts") or []:
            g["alert_firing"].add_metric(base + [a["rule"]], 1.0 if a["state"] == FIRING else 0.0)
        if s.get("at"):
            g["monitor_last_refresh_timestamp_seconds"].add_metric(base, float(s["at"]))
        yield from g.values()


# Gauge name (aidevops_NAME) -> what it measures; every one is labelled by model and version.
_GAUGES = {
    "drift_psi": "Population stability index of each feature over the monitor window.",
    "drift_ks_statistic": "Kolmogorov-Smirnov statistic of each feature over the monitor window.",
    "drift_ks_pvalue": "Kolmogorov-Smirnov p-value of each feature over the monitor window.",
    "drift_wasserstein_std": "Wasserstein-1 distance over the reference std, per feature.",
    "drift_detected": "1 when the feature is flagged as drifted (material and significant), else 0.",
    "drift_features_drifted": "Number of features flagged as drifted.",
    "drift_max_psi": "Largest per-feature PSI.",
    "prediction_drift_psi": "PSI of the prediction distribution against the reference.",
    "live_accuracy": "Accuracy over the labelled requests of the window (feedback).",
    "live_accuracy_lower": "Lower bound of the live accuracy's Wilson interval.",
    "live_accuracy_upper": "Upper bound of the live accuracy's Wilson interval.",
    "live_mae": "Mean absolute error over the labelled requests of the window.",
    "live_rmse": "Root mean squared error over the labelled requests of the window.",
    "live_labelled": "Labelled requests in the quality window.",
    "monitor_error_rate": "Share of failed (5xx) requests in the monitor window.",
    "monitor_latency_p99_ms": "99th percentile latency of the window's logged requests, in ms.",
    "monitor_window_rows": "Logged input rows in the monitor window.",
    "alert_firing": "1 while the alert rule fires, else 0.",
    "monitor_last_refresh_timestamp_seconds": "When the monitor last refreshed (Unix time).",
}
# The gauges with one more label: each feature's drift, each alert rule's state.
_LABELLED_BY = {
    **dict.fromkeys(
        ("drift_psi", "drift_ks_statistic", "drift_ks_pvalue", "drift_wasserstein_std", "drift_detected"), ["feature"]
    ),
    "alert_firing": ["rule"],
}
