"""What the Monitor panel charts for a deployment, read from the workspace's request log and alert tables.

The live monitor in the model server computes the current window (drift, quality, alerts; `manager.
monitor_summary`); this module adds the history around it: request rate, latency percentiles and
errors per time bucket, live accuracy over time with its interval, the window's prediction
distribution against the reference, and the alert state and events. It reads deploy.db directly
(WAL: readers never block the server's writer), so it also answers for a stopped deployment.
"""

from __future__ import annotations

import json
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..workspace import Workspace

MAX_MINUTES = 7 * 24 * 60
QUALITY_POINTS = 40
HISTORY_WINDOWS = 5  # the accuracy curve covers this many monitor windows of labelled rows
_TAG_MISSES: dict[tuple[str, str], float] = {}  # (model, version) -> when its profile tag was last found missing


@lru_cache(maxsize=32)
def _profile_of(path: str, mtime: float) -> dict | None:
    """The reference profile stored in a cached model file (weights not read); cached by file and mtime."""
    from ..trainer.modelfile import read_model_info  # noqa: PLC0415

    try:
        return read_model_info(path).get("profile")
    except Exception:  # noqa: BLE001 - a chart without a reference beats no chart
        return None


def _tagged_profile(ws: Workspace, model: str, version: str) -> dict | None:
    """A foreign model's profile (the version tag `aidevops.reference_profile`), read once into the deployment
    cache as reference_profile.json, so later charts skip MLflow."""
    from .versions import cache_dir  # noqa: PLC0415

    cached = cache_dir(ws, model, version) / "reference_profile.json"
    try:
        return json.loads(cached.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    if time.monotonic() - _TAG_MISSES.get((model, version), -1e9) < 60:
        return None
    from ..serving.loader import tagged_profile  # noqa: PLC0415 - MLflow only on a cache miss

    try:
        profile = tagged_profile(ws, model, version)
    except Exception:  # noqa: BLE001 - a chart without a reference beats no chart
        profile = None
    if profile is None:  # no tag, or the registry did not answer: ask again in a minute, not on every poll
        _TAG_MISSES[(model, version)] = time.monotonic()
        return None
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp")
        tmp.write_text(json.dumps(profile), encoding="utf-8")
        tmp.replace(cached)
    except OSError:
        pass
    return profile


def _reference(ws: Workspace, model: str, version: str | None) -> tuple[str | None, dict | None]:
    """(task, profile) of a deployed version from the deployment cache; (None, None) when not cached."""
    from .versions import cache_dir, cached_model_file  # noqa: PLC0415

    if not version:
        return None, None
    task = None
    try:
        task = json.loads((cache_dir(ws, model, version) / "reference.json").read_text()).get("task")
    except (OSError, ValueError, AttributeError):
        pass
    path = cached_model_file(ws, model, version)
    profile = _profile_of(str(path), path.stat().st_mtime) if path is not None else _tagged_profile(ws, model, version)
    if task is None and isinstance(profile, dict):
        task = (profile.get("predictions") or {}).get("task")
    return task, profile


def check_range(minutes: Any, buckets: Any) -> tuple[float, int]:
    """The chart's span in minutes (1 to a week) and its number of buckets (1 to 1000)."""
    from ..monitoring.series import MAX_BUCKETS  # noqa: PLC0415

    if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or not 1 <= minutes <= MAX_MINUTES:
        raise ConfigError(f"minutes must be a number from 1 to {MAX_MINUTES} (a week), got {str(minutes)[:20]!r}.")
    if isinstance(buckets, bool) or not isinstance(buckets, int) or not 1 <= buckets <= MAX_BUCKETS:
        raise ConfigError(f"buckets must be a whole number from 1 to {MAX_BUCKETS}, got {str(buckets)[:20]!r}.")
    return float(minutes), buckets


def series(
    ws: Workspace, name: str, *, minutes: float = 60, buckets: int = 60, now: float | None = None
) -> dict[str, Any]:
    """Time series of deployment `name` over the last `minutes`: requests, live quality, prediction distribution."""
    from ..db import connect  # noqa: PLC0415
    from ..monitoring.live import quality_series  # noqa: PLC0415
    from ..monitoring.series import prediction_distribution  # noqa: PLC0415
    from ..serving import rollups  # noqa: PLC0415
    from ..serving.livedata import read_feedback, read_window  # noqa: PLC0415
    from . import manager  # noqa: PLC0415
    from .child import monitor_config  # noqa: PLC0415

    minutes, buckets = check_range(minutes, buckets)
    dep = manager.get(ws, name)
    # The request chart reads rollups (serving/rollups.py), whole 5-second buckets: its range ends at the next
    # boundary after now, so the current bucket is charted (its rate over the part that has passed: the panel
    # shows the last bucket's rate as the rate now), and its bucket width is a multiple of 5 s.
    now = time.time() if now is None else float(now)
    first, stop, width = rollups.chart_range(now, minutes, buckets)
    start, end = float(first), float(stop)
    version = dep.active_version
    cfg = monitor_config(dep)
    task, profile = _reference(ws, dep.model, version)
    db = ws.deploy_db
    conn = connect(db)  # one connection for the chart, the window and its labels
    try:
        requests = rollups.request_series(
            conn, dep.model, start=first, width=width, buckets=buckets, deployment=dep.name, now=now
        )
        win = read_window(
            db, dep.model, version, rows=cfg.window * HISTORY_WINDOWS, deployment=dep.name, inputs=False, conn=conn
        )
        feedback = (
            read_feedback(
                db,
                dep.model,
                version=version,
                first_id=win.first_id,
                last_id=win.last_id,
                deployment=dep.name,
                conn=conn,
            )
            if win.first_id is not None and task
            else []
        )
    finally:
        conn.close()
    quality = (
        quality_series(
            prediction_ids=win.prediction_ids,
            predictions=win.predictions,
            prediction_ts=win.prediction_ts,
            feedback=feedback,
            task=task or "",
            last=cfg.window,
            points=QUALITY_POINTS,
            min_labels=cfg.min_labels,
        )
        if task
        else []
    )
    recent = np.flatnonzero(win.prediction_ts >= start)[-cfg.window :].tolist()
    newest = [win.predictions[i] for i in recent]
    return {
        "deployment": dep.name,
        "model": dep.model,
        "version": version,
        "start": start,
        "end": end,
        "task": task,
        "requests": requests,
        "quality": quality,
        "predictions": prediction_distribution(newest, profile),
    }


def alerts(ws: Workspace, name: str, *, limit: int = 50) -> dict[str, Any]:
    """The alert rules' current state (one row per rule) and the newest `limit` fired/resolved events, newest first."""
    from ..monitoring.alertstore import AlertStore  # noqa: PLC0415
    from . import manager  # noqa: PLC0415
    from .child import monitor_config  # noqa: PLC0415

    dep = manager.get(ws, name)
    store = AlertStore(Path(ws.deploy_db))
    state = store.load_state(dep.name)
    rows = []
    for rule in monitor_config(dep).rules:
        st = state.get(rule.name) or {}
        rows.append(
            {
                "rule": rule.name,
                "state": st.get("state", "ok"),
                "since": st.get("since"),
                "value": st.get("value"),
                "features": st.get("features") or [],
                "metric": rule.metric,
                "op": rule.op,
                "threshold": rule.threshold,
                "action": rule.action,
            }
        )
    return {"alerts": rows, "events": list(reversed(store.events(dep.name, limit=limit)))}
