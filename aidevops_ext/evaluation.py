"""Scoring a model on a split, comparing it with the champion on rows neither trained on, and the plots a reviewer wants."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import splitting
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


def compare(
    candidate: Any,
    champion: Any | None,
    X_test: np.ndarray,
    y_test: np.ndarray,
    *,
    test_keys: np.ndarray | None = None,
    candidate_keys: np.ndarray | None = None,
    champion_keys: np.ndarray | None = None,
    champion_version: str | None = None,
) -> dict[str, Any]:
    """Candidate and champion scored on the same test rows: those neither trained on.

    `*_keys` are row keys (aidevops_ext/splitting.py): the test rows', and the rows each model's
    training saw (None: not recorded, so no row can be left out for that model). Returns
    ``{"candidate", "champion", "champion_version", "comparison"}``; `comparison` is what
    `gate.evaluate_gate(comparison=...)` takes. The rows are chosen before any score is computed.
    """
    n = len(y_test)
    keep = np.ones(n, dtype=bool)
    candidate_trained = champion_trained = 0
    if test_keys is not None and candidate_keys is not None:
        seen = ~splitting.unseen_mask(test_keys, candidate_keys)
        candidate_trained = int(seen.sum())
        keep &= ~seen
    if champion is not None and test_keys is not None and champion_keys is not None:
        seen = ~splitting.unseen_mask(test_keys, champion_keys)
        champion_trained = int(seen.sum())
        keep &= ~seen
    comparison = {
        "test_rows": int(n),
        "compared_rows": int(keep.sum()),
        "candidate_trained": candidate_trained,
        "champion_trained": champion_trained,
        "champion_lineage": None if champion is None else champion_keys is not None and test_keys is not None,
    }
    if not keep.any():  # nothing left to score: the gate refuses on the counts alone
        return {
            "candidate": {},
            "champion": None if champion is None else {},
            "champion_version": champion_version,
            "comparison": comparison,
        }
    X, y = X_test[keep], y_test[keep]
    return {
        "candidate": evaluate(candidate, X, y),
        "champion": None if champion is None else evaluate(champion, X, y),
        "champion_version": champion_version,
        "comparison": comparison,
    }


def compare_table(
    candidate: dict[str, float], champion: dict[str, float] | None, champion_version: str | None = None
) -> str:
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
        ax.set_xticks(range(len(labels)), [str(label) for label in labels])
        ax.set_yticks(range(len(labels)), [str(label) for label in labels])
        for (i, j), v in np.ndenumerate(cm):
            ax.text(j, i, str(v), ha="center", va="center", color="white" if v > cm.max() / 2 else "black", fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title("confusion matrix (test split)")
        fig.colorbar(im, ax=ax)
    else:
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
        ax1.scatter(y, pred, s=8, alpha=0.6)
        lo, hi = float(min(y.min(), pred.min())), float(max(y.max(), pred.max()))
        ax1.plot([lo, hi], [lo, hi], color="grey", lw=1)
        ax1.set_xlabel("true")
        ax1.set_ylabel("predicted")
        ax1.set_title("predicted vs true")
        ax2.hist(pred - y, bins=30)
        ax2.set_title("residuals")
        ax2.set_xlabel("predicted − true")
    fig.tight_layout()
    return fig
