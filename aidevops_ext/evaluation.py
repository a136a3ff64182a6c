"""Scoring a model on a split, comparing it with the champion, and the plots a reviewer wants."""

from __future__ import annotations

from typing import Any

import numpy as np

from .trainer import metrics


def is_classifier(estimator: Any) -> bool:
    """True for estimators that predict classes."""
    return hasattr(estimator, "classes_") and hasattr(estimator, "predict_proba")


def evaluate(estimator: Any, X: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Flat metric dict (classification or regression metrics, by estimator type)."""
    pred = estimator.predict(X)
    if is_classifier(estimator):
        proba = estimator.predict_proba(X)
        return metrics.classification_metrics(y, pred, proba, labels=estimator.classes_)
    return metrics.regression_metrics(y, pred)


def compare_table(candidate: dict[str, float], champion: dict[str, float] | None, champion_version: str | None = None) -> str:
    """A plain-text table of candidate vs champion metrics with deltas."""
    head = f"{'metric':<18}{'candidate':>12}"
    if champion:
        head += f"{'champion v' + str(champion_version):>16}{'delta':>10}"
    lines = [head, "-" * len(head)]
    for name, value in candidate.items():
        row = f"{name:<18}{value:>12.4f}"
        if champion and name in champion:
            row += f"{champion[name]:>16.4f}{value - champion[name]:>+10.4f}"
        lines.append(row)
    if not champion:
        lines.append("(no champion yet: the gate checks absolute thresholds only)")
    return "\n".join(lines)


def plot_diagnostics(estimator: Any, X: np.ndarray, y: np.ndarray):
    """Confusion matrix (classifiers) or residuals plot (regressors); returns the figure."""
    import matplotlib.pyplot as plt

    pred = estimator.predict(X)
    if is_classifier(estimator):
        labels = list(estimator.classes_)
        cm = metrics.confusion_matrix(y, pred, labels=estimator.classes_)
        fig, ax = plt.subplots(figsize=(5, 4.5))
        im = ax.imshow(cm, cmap="Blues")
        ax.set_xticks(range(len(labels)), [str(l) for l in labels])
        ax.set_yticks(range(len(labels)), [str(l) for l in labels])
        for (i, j), v in np.ndenumerate(cm):
            ax.text(j, i, str(v), ha="center", va="center", color="white" if v > cm.max() / 2 else "black", fontsize=8)
        ax.set_xlabel("predicted"); ax.set_ylabel("true"); ax.set_title("confusion matrix (test split)")
        fig.colorbar(im, ax=ax)
    else:
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
        ax1.scatter(y, pred, s=8, alpha=0.6)
        lo, hi = float(min(y.min(), pred.min())), float(max(y.max(), pred.max()))
        ax1.plot([lo, hi], [lo, hi], color="grey", lw=1)
        ax1.set_xlabel("true"); ax1.set_ylabel("predicted"); ax1.set_title("predicted vs true")
        ax2.hist(pred - y, bins=30); ax2.set_title("residuals"); ax2.set_xlabel("predicted − true")
    fig.tight_layout()
    return fig
