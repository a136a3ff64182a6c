"""One monitoring pass over a window of live traffic: drift, prediction drift, live quality, request stats.

Pure: it takes arrays (read from the request log by the caller) and the model's reference profile and
returns a JSON-able summary plus the flat snapshot the alert rules read. The model server calls it in a
background thread; notebooks and tests call it directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .alerts import build_snapshot, request_stats
from .drift import feature_drift, prediction_drift
from .quality import join_feedback, quality_window, quality_windows
from .rules import MonitorConfig


def summarize_window(
    *,
    rows: np.ndarray,
    row_predictions: Sequence[Any] | None = None,
    profile: dict | None,
    task: str | None,
    config: MonitorConfig,
    prediction_ids: Sequence[str] = (),
    predictions: Sequence[Any] = (),
    prediction_ts: Any = (),
    feedback: Sequence[tuple[str, Any, float]] = (),
    latency_ms: Any = None,
    failed: Any = None,
    window: Any = None,
    now: float | None = None,
) -> dict:
    """{"drift", "prediction_drift", "quality", "requests", "snapshot"} of one window (parts None when not computable).

    `rows`: the window's input rows; `row_predictions`: the prediction of each row (for prediction drift);
    `prediction_ids`/`predictions`/`prediction_ts`: every predicted row (id, prediction, request time), joined
    with `feedback` [(id, label, label_time)] for live quality; `latency_ms`/`failed`: one per request.
    """
    drift = pred = quality = None
    notes: list[str] = []
    reference = profile if isinstance(profile, dict) else {}
    features = reference.get("features")
    if features and rows.ndim == 2 and rows.shape[1] == len(features):
        drift = feature_drift(rows, reference, **config.drift_options())
    elif features:
        notes.append(
            f"the logged rows have {rows.shape[1] if rows.ndim == 2 else '?'} features, the profile "
            f"{len(features)}: no feature drift"
        )
    else:
        notes.append("the model carries no reference profile: no feature drift")
    ref_preds = reference.get("predictions")
    scored = [p for p in (row_predictions or []) if p is not None and not isinstance(p, (list, dict))]
    if isinstance(ref_preds, dict) and ref_preds.get("task") in ("classification", "regression") and scored:
        try:
            pred = prediction_drift(np.asarray(scored), reference, **config.drift_options())
        except Exception as exc:  # noqa: BLE001 - e.g. string labels a regression profile cannot compare
            notes.append(f"no prediction drift ({exc})")
    if task in ("classification", "regression") and len(predictions):
        joined = _joined(prediction_ids, predictions, prediction_ts, feedback)
        try:
            quality = quality_window(joined, task, last=config.window, now=now, min_labels=config.min_labels)
        except Exception as exc:  # noqa: BLE001 - labels of the wrong kind (a string for a regressor)
            notes.append(f"no live quality ({exc})")
    requests = request_stats(latency_ms if latency_ms is not None else [], failed)
    snapshot = build_snapshot(drift=drift, prediction=pred, quality=quality, requests=requests, window=window)
    return {
        "drift": drift.to_dict() if drift is not None else None,
        "prediction_drift": pred.to_dict() if pred is not None else None,
        "quality": quality,
        "requests": requests,
        "snapshot": snapshot,
        "notes": notes,
    }


def _joined(
    prediction_ids: Sequence[str],
    predictions: Sequence[Any],
    prediction_ts: Any,
    feedback: Sequence[tuple[str, Any, float]],
):
    """Predicted rows joined with their labels; `feedback` records are (id, label, label time), join_feedback's order."""
    return join_feedback(
        {
            "request_id": list(prediction_ids),
            "timestamp": np.asarray(prediction_ts, dtype=np.float64),
            "prediction": list(predictions),
        },
        list(feedback),
    )


def quality_series(
    *,
    prediction_ids: Sequence[str],
    predictions: Sequence[Any],
    prediction_ts: Any,
    feedback: Sequence[tuple[str, Any, float]],
    task: str,
    last: int = 100,
    points: int = 40,
    min_labels: int = 30,
    confidence: float = 0.95,
) -> list[dict]:
    """Live quality over time: the window of the `last` labelled rows, as of `points` evenly spaced moments.

    Each point is a quality_window result (accuracy with its Wilson interval, or MAE/RMSE) plus `at`;
    for the live accuracy curve of the monitor notebook and the Monitor panel.
    """
    ts = np.asarray(prediction_ts, dtype=np.float64)
    if not len(ts) or task not in ("classification", "regression"):
        return []
    joined = _joined(prediction_ids, predictions, ts, feedback)
    stamps = [f[2] for f in feedback]
    end = max(float(ts.max()), max(stamps) if stamps else float(ts.max()))
    start = float(ts.min())
    moments = np.linspace(start, end, max(2, int(points))).tolist()
    found = quality_windows(joined, task, moments, last=last, min_labels=min_labels, confidence=confidence)
    return [{**q, "at": at} for q, at in zip(found, moments)]
