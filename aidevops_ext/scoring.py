"""Metrics for any model on a table: whatever MLflow flavor, scored through what pyfunc returns.

Classification: accuracy and macro F1 from the predicted labels; log loss where the model
yields probabilities; ROC AUC for binary targets. Regression: MSE, MAE, max error and R².
The names match the gate's vocabulary (`log_loss`, `mse`, `mae`, `max_error` are lower-is-better
by default in aidevops_ext/gate.py).

Probabilities come from, in order: the raw model's `predict_proba` (scikit-learn flavors, reached
through pyfunc's `get_raw_model`), else a 2-D output with one column per class (rows summing to
1 are read as probabilities; other scores go through a softmax), else a single column of values
in [0, 1] for a binary target (the positive class's probability). Labels are then the argmax.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .errors import DataError

CLASSIFICATION_METRICS = ("accuracy", "f1_macro", "log_loss", "roc_auc")
REGRESSION_METRICS = ("mse", "mae", "max_error", "r2")


def score(model: Any, features: pd.DataFrame, target: pd.Series | np.ndarray, task: str) -> dict[str, float]:
    """Metrics of `model` (anything with `.predict(frame)`, e.g. a pyfunc model) on one table."""
    if task not in ("classification", "regression"):
        raise DataError(f"task must be classification or regression, not {task!r}.")
    y = np.asarray(target)
    if len(features) != len(y) or len(y) == 0:
        raise DataError(
            f"cannot score on {len(features)} feature rows and {len(y)} targets; both must be equal and non-zero."
        )
    if task == "regression":
        return regression_metrics(y, _values(model.predict(features), len(y)))
    labels, proba, classes = classify(model, features, y)
    return classification_metrics(y, labels, proba, classes)


def predictions(model: Any, features: pd.DataFrame, target: pd.Series | np.ndarray, task: str) -> np.ndarray:
    """One prediction per row: the class label (read from probabilities or logits as `score` does) or the value."""
    y = np.asarray(target)
    if task == "regression":
        return _values(model.predict(features), len(features))
    return classify(model, features, y)[0]


def regression_metrics(y: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """MSE, MAE, max error and R²."""
    from sklearn import metrics

    y = np.asarray(y, dtype=np.float64)
    return {
        "mse": float(metrics.mean_squared_error(y, predicted)),
        "mae": float(metrics.mean_absolute_error(y, predicted)),
        "max_error": float(metrics.max_error(y, predicted)),
        "r2": float(metrics.r2_score(y, predicted)) if len(y) > 1 else float("nan"),
    }


def classification_metrics(
    y: np.ndarray, labels: np.ndarray, proba: np.ndarray | None = None, classes: np.ndarray | None = None
) -> dict[str, float]:
    """Accuracy, macro F1, and with probabilities log loss (and ROC AUC when binary)."""
    from sklearn import metrics

    out = {
        "accuracy": float(metrics.accuracy_score(y, labels)),
        "f1_macro": float(metrics.f1_score(y, labels, average="macro", zero_division=0)),
    }
    if proba is None or classes is None:
        return out
    known = np.isin(y, classes)
    if not known.all():
        # A test label the model never saw has no probability column; log loss is undefined there.
        return out
    out["log_loss"] = float(metrics.log_loss(y, np.clip(proba, 1e-15, 1.0), labels=classes))
    if len(classes) == 2 and len(np.unique(y)) == 2:
        out["roc_auc"] = float(metrics.roc_auc_score(y == classes[1], proba[:, 1]))
    return out


def classify(
    model: Any, features: pd.DataFrame, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(labels, probabilities or None, the probabilities' class order or None) for a classifier."""
    raw = _raw_model(model)
    if raw is not None and hasattr(raw, "predict_proba") and hasattr(raw, "classes_"):
        labels = np.asarray(model.predict(features)).reshape(len(y), -1)[:, 0]
        try:
            proba = np.asarray(raw.predict_proba(features), dtype=np.float64)
        except Exception:  # noqa: BLE001 - a wrapped pipeline may need pyfunc's input conversion; labels still score
            return labels, None, None
        return labels, proba, np.asarray(raw.classes_)
    output = _matrix(model.predict(features), len(y))
    classes = _class_order(y, output.shape[1])
    if output.shape[1] == 1:
        column = output[:, 0]
        if (
            classes is not None
            and len(classes) == 2
            and np.issubdtype(column.dtype, np.floating)
            and np.all((column >= 0) & (column <= 1))
            and not np.all(np.mod(column, 1) == 0)
        ):
            proba = np.column_stack([1 - column, column])
            return classes[(column >= 0.5).astype(int)], proba, classes
        return column, None, None
    if classes is None or not np.issubdtype(output.dtype, np.number):
        raise DataError(
            f"the model returned {output.shape[1]} columns per row but the target has {len(np.unique(y))} classes; "
            "return one label per row, or one probability column per class."
        )
    scores = output.astype(np.float64)
    sums = scores.sum(axis=1)
    if np.all(scores >= 0) and np.allclose(sums, 1.0, atol=1e-4):
        proba = scores
    else:
        shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
        proba = shifted / shifted.sum(axis=1, keepdims=True)
    return classes[np.argmax(proba, axis=1)], proba, classes


def _class_order(y: np.ndarray, columns: int) -> np.ndarray | None:
    """Classes in column order: 0..k-1 for integer-coded labels, else the sorted labels (binary: k may be 1)."""
    present = np.unique(y)
    if np.issubdtype(present.dtype, np.integer) and present.min() >= 0 and present.max() < max(columns, 2):
        return np.arange(max(columns, 2))
    if len(present) == max(columns, 2):
        return present
    return None


def _raw_model(model: Any) -> Any:
    getter = getattr(model, "get_raw_model", None)
    if getter is None:
        return model if hasattr(model, "predict_proba") else None
    try:
        return getter()
    except Exception:  # noqa: BLE001 - flavors without a raw model (custom pyfunc) raise here
        return None


def _matrix(output: Any, rows: int) -> np.ndarray:
    if isinstance(output, pd.Series):
        output = output.to_numpy()
    elif isinstance(output, pd.DataFrame):
        output = output.to_numpy()
    elif hasattr(output, "detach"):  # a torch tensor
        output = output.detach().cpu().numpy()
    array = np.asarray(output)
    if array.ndim == 0 or array.shape[0] != rows:
        raise DataError(
            f"the model returned {array.shape[0] if array.ndim else 'a scalar'} predictions for {rows} rows; it must return one per row."
        )
    return array.reshape(rows, -1)


def _values(output: Any, rows: int) -> np.ndarray:
    array = _matrix(output, rows)
    if array.shape[1] != 1:
        raise DataError(f"a regression model must return one value per row, not {array.shape[1]}.")
    return array[:, 0].astype(np.float64)
