"""Evaluation metrics in pure NumPy, matching scikit-learn's definitions.

Classification scores follow scikit-learn with ``zero_division=0``: a class that is never
predicted has precision 0, a class that never occurs has recall 0, and F1 is 0 when both are 0.
Macro averages run over the union of labels seen in ``y_true`` and ``y_pred`` (or ``labels``).
"""

from __future__ import annotations

import numpy as np

from aidevops_ext.errors import DataError

__all__ = [
    "accuracy_score",
    "classification_metrics",
    "confusion_matrix",
    "f1_score",
    "log_loss",
    "max_error",
    "mean_absolute_error",
    "mean_squared_error",
    "precision_recall_fscore",
    "precision_score",
    "r2_score",
    "recall_score",
    "regression_metrics",
    "roc_auc_score",
    "root_mean_squared_error",
]

_AVERAGES = (None, "macro", "micro", "weighted")


# --------------------------------------------------------------------------- validation


def _labels_1d(y: object, what: str) -> np.ndarray:
    a = np.asarray(y)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 1:
        raise DataError(f"{what} must be a 1-D array of labels, got shape {a.shape}; pass one label per row.")
    return a


def _check_pair(y_true: object, y_pred: object, what: str = "y_pred") -> tuple[np.ndarray, np.ndarray]:
    t = _labels_1d(y_true, "y_true")
    p = _labels_1d(y_pred, what)
    _check_lengths(t, p, what)
    return t, p


def _check_lengths(t: np.ndarray, p: np.ndarray, what: str) -> None:
    if len(t) != len(p):
        raise DataError(f"y_true has {len(t)} rows but {what} has {len(p)}; pass one {what} entry per true value.")
    if len(t) == 0:
        raise DataError("y_true is empty; metrics need at least one sample.")


def _encode(t: np.ndarray, p: np.ndarray, labels: object | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Map both label arrays to indices into ``labels`` (-1 where a value is not listed)."""
    if labels is None:
        try:
            lab = np.union1d(t, p)
        except TypeError as exc:  # e.g. ints mixed with strings: no common ordering
            raise DataError(f"y_true and y_pred labels cannot be compared ({exc}); use one label type.") from None
    else:
        lab = _labels_1d(labels, "labels")
        if len(lab) == 0:
            raise DataError("labels is empty; pass at least one class label or None.")
    order = np.argsort(lab, kind="stable")
    srt = lab[order]

    def index(v: np.ndarray) -> np.ndarray:
        pos = np.searchsorted(srt, v).clip(0, len(srt) - 1)
        found = srt[pos] == v
        return np.where(found, order[pos], -1)

    return index(t), index(p), lab


# --------------------------------------------------------------------------- classification


def accuracy_score(y_true: object, y_pred: object) -> float:
    """Fraction of samples whose predicted label equals the true label."""
    t, p = _check_pair(y_true, y_pred)
    return float(np.mean(t == p))


def confusion_matrix(y_true: object, y_pred: object, labels: object | None = None) -> np.ndarray:
    """Counts C[i, j] of samples with true label i predicted as j (labels sorted unless given)."""
    t, p = _check_pair(y_true, y_pred)
    ti, pi, lab = _encode(t, p, labels)
    n = len(lab)
    keep = (ti >= 0) & (pi >= 0)  # scikit-learn ignores samples whose labels are not listed
    flat = np.bincount(ti[keep] * n + pi[keep], minlength=n * n)
    return flat.reshape(n, n).astype(np.int64)


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    # zero_division=0: an undefined ratio counts as 0, as scikit-learn does with zero_division=0
    out = np.zeros(np.shape(num), dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


def precision_recall_fscore(
    y_true: object, y_pred: object, average: str | None = "macro", labels: object | None = None
) -> tuple[float | np.ndarray, float | np.ndarray, float | np.ndarray]:
    """Precision, recall and F1, per class (``average=None``) or averaged ("macro", "micro", "weighted")."""
    if average not in _AVERAGES:
        raise DataError(f"average={average!r} is not supported; use one of {list(_AVERAGES)}.")
    t, p = _check_pair(y_true, y_pred)
    ti, pi, lab = _encode(t, p, labels)
    n = len(lab)
    # per-label counts over all samples (not the confusion matrix restricted to ``labels``), so a
    # prediction of label j counts against j's precision whatever its true label, as in scikit-learn
    tp = np.bincount(ti[(ti == pi) & (ti >= 0)], minlength=n).astype(np.float64)
    predicted = np.bincount(pi[pi >= 0], minlength=n).astype(np.float64)
    actual = np.bincount(ti[ti >= 0], minlength=n).astype(np.float64)
    if average == "micro":
        tp, predicted, actual = tp.sum(), predicted.sum(), actual.sum()
    precision = _safe_div(tp, predicted)
    recall = _safe_div(tp, actual)
    # F1 from counts (not from p and r) so rounding matches scikit-learn's formula
    f1 = _safe_div(2 * tp, predicted + actual)
    if average is None:
        return precision, recall, f1
    if average == "micro":
        return float(precision), float(recall), float(f1)
    if average == "weighted":
        total = actual.sum()
        w = actual / total if total else np.zeros_like(actual)
        return float(precision @ w), float(recall @ w), float(f1 @ w)
    return float(precision.mean()), float(recall.mean()), float(f1.mean())


def precision_score(
    y_true: object, y_pred: object, average: str | None = "macro", labels: object | None = None
) -> float | np.ndarray:
    """Precision (zero_division=0), per class or averaged."""
    return precision_recall_fscore(y_true, y_pred, average=average, labels=labels)[0]


def recall_score(
    y_true: object, y_pred: object, average: str | None = "macro", labels: object | None = None
) -> float | np.ndarray:
    """Recall (zero_division=0), per class or averaged."""
    return precision_recall_fscore(y_true, y_pred, average=average, labels=labels)[1]


def f1_score(
    y_true: object, y_pred: object, average: str | None = "macro", labels: object | None = None
) -> float | np.ndarray:
    """F1 score (zero_division=0), per class or averaged."""
    return precision_recall_fscore(y_true, y_pred, average=average, labels=labels)[2]


def _proba_2d(proba: object, n_rows: int) -> np.ndarray:
    q = np.asarray(proba)
    if not np.issubdtype(q.dtype, np.floating):
        q = q.astype(np.float64)
    if q.ndim == 1:  # probability of the positive (second) class, as scikit-learn accepts
        q = np.stack([1 - q, q], axis=1)
    if q.ndim != 2:
        raise DataError(f"proba must be 1-D or 2-D, got shape {q.shape}; pass predict_proba's output.")
    if len(q) != n_rows:
        raise DataError(f"y_true has {n_rows} rows but proba has {len(q)}; pass one probability row per sample.")
    if q.size and (np.nanmin(q) < 0 or np.nanmax(q) > 1):
        raise DataError("proba has values outside [0, 1]; pass probabilities, not scores or logits.")
    return q


def log_loss(y_true: object, proba: object, labels: object | None = None) -> float:
    """Mean cross-entropy; proba columns follow ``labels`` (default: sorted labels of y_true)."""
    t = _labels_1d(y_true, "y_true")
    _check_lengths(t, np.asarray(proba), "proba")
    q = _proba_2d(proba, len(t))
    lab = np.unique(t) if labels is None else _labels_1d(labels, "labels")
    if len(lab) < 2:
        raise DataError(f"log_loss needs at least two classes but found {len(lab)}; pass labels= with every class.")
    if q.shape[1] != len(lab):
        raise DataError(
            f"proba has {q.shape[1]} columns but there are {len(lab)} classes; "
            "pass labels= in the column order of proba."
        )
    ti, _, _ = _encode(t, t[:0], lab)
    if np.any(ti < 0):
        missing = np.unique(t[ti < 0])[:5].tolist()
        raise DataError(f"y_true contains labels {missing} that are not in labels; list every class.")
    # clip like scikit-learn so a confident mistake costs -log(eps), not infinity
    eps = np.finfo(q.dtype).eps
    picked = np.clip(q[np.arange(len(t)), ti], eps, 1 - eps)
    return float(-np.mean(np.log(picked)))


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given their average rank (like scipy.stats.rankdata)."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    ends = np.r_[starts[1:], len(xs)]
    avg = (starts + ends + 1) / 2.0  # mean of ranks start+1 .. end
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def roc_auc_score(y_true: object, score: object) -> float:
    """Binary ROC AUC; the greater label is positive, tied scores count one half (average ranks)."""
    t = _labels_1d(y_true, "y_true")
    s = np.asarray(score)
    _check_lengths(t, s, "score")
    if s.ndim == 2 and s.shape[1] == 2:  # predict_proba output: take the positive column
        s = s[:, 1]
    s = _labels_1d(s, "score").astype(np.float64)
    if np.isnan(s).any():
        raise DataError("score contains NaN; pass finite scores.")
    classes = np.unique(t)
    if len(classes) != 2:
        raise DataError(
            f"roc_auc_score needs exactly two classes in y_true but found {len(classes)}; "
            "it is defined for binary problems only."
        )
    pos = t == classes[1]
    n_pos = int(pos.sum())
    n_neg = len(t) - n_pos
    # Mann-Whitney U: equal to the area under the ROC curve with ties counted as 1/2
    u = _average_ranks(s)[pos].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def classification_metrics(
    y_true: object, y_pred: object, proba: object | None = None, labels: object | None = None
) -> dict[str, float]:
    """Flat dict of accuracy, macro precision/recall/F1 and, given proba, log loss and binary ROC AUC."""
    t, p = _check_pair(y_true, y_pred)
    prec, rec, f1 = precision_recall_fscore(t, p, average="macro")
    # average="macro" gives scalars
    out = {"accuracy": accuracy_score(t, p), "precision_macro": float(prec), "recall_macro": float(rec)}
    out["f1_macro"] = float(f1)
    if proba is not None:
        q = _proba_2d(proba, len(t))
        lab = np.unique(t) if labels is None else _labels_1d(labels, "labels")
        if len(lab) >= 2:  # a one-class evaluation set has no defined log loss
            out["log_loss"] = log_loss(t, q, labels=lab)
        if q.shape[1] == 2 and len(np.unique(t)) == 2:
            # column 1 belongs to lab[1]; score it against that label so string labels work too
            out["roc_auc"] = roc_auc_score(np.where(t == lab[1], 1, 0), q[:, 1])
    return out


# --------------------------------------------------------------------------- regression


def _check_reg(y_true: object, y_pred: object) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if t.ndim == 2 and t.shape[1] == 1:
        t = t[:, 0]
    if p.ndim == 2 and p.shape[1] == 1:
        p = p[:, 0]
    _check_lengths(t, p, "y_pred")
    if t.shape != p.shape or t.ndim > 2:
        raise DataError(f"y_true has shape {t.shape} but y_pred has {p.shape}; pass arrays of the same shape.")
    return t, p


def mean_squared_error(y_true: object, y_pred: object) -> float:
    """Mean squared error (averaged over outputs for 2-D targets)."""
    t, p = _check_reg(y_true, y_pred)
    return float(np.mean((t - p) ** 2))


def root_mean_squared_error(y_true: object, y_pred: object) -> float:
    """Square root of the MSE (per output, then averaged, as scikit-learn does)."""
    t, p = _check_reg(y_true, y_pred)
    return float(np.mean(np.sqrt(np.mean((t - p) ** 2, axis=0))))


def mean_absolute_error(y_true: object, y_pred: object) -> float:
    """Mean absolute error."""
    t, p = _check_reg(y_true, y_pred)
    return float(np.mean(np.abs(t - p)))


def max_error(y_true: object, y_pred: object) -> float:
    """Largest absolute residual."""
    t, p = _check_reg(y_true, y_pred)
    return float(np.max(np.abs(t - p)))


def r2_score(y_true: object, y_pred: object) -> float:
    """Coefficient of determination; a constant y_true scores 1.0 if predicted exactly, else 0.0."""
    t, p = _check_reg(y_true, y_pred)
    ss_res = np.sum((t - p) ** 2, axis=0)
    ss_tot = np.sum((t - t.mean(axis=0)) ** 2, axis=0)
    # scikit-learn's force_finite=True: keep the score finite for constant targets
    r2 = np.where(ss_tot != 0, 1 - ss_res / np.where(ss_tot != 0, ss_tot, 1), np.where(ss_res == 0, 1.0, 0.0))
    return float(np.mean(r2))


def regression_metrics(y_true: object, y_pred: object) -> dict[str, float]:
    """Flat dict of mse, rmse, mae, max_error and r2."""
    t, p = _check_reg(y_true, y_pred)
    return {
        "mse": mean_squared_error(t, p),
        "rmse": root_mean_squared_error(t, p),
        "mae": mean_absolute_error(t, p),
        "max_error": max_error(t, p),
        "r2": r2_score(t, p),
    }
