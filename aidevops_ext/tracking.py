"""Trainer callbacks that log to MLflow (kept out of the trainer so it never imports MLflow)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .trainer.callbacks import Callback


class MLflowEpochLogger(Callback):
    """Logs each epoch's history entry (loss, validation loss/score, seconds) to the active MLflow run."""

    def __init__(self, X_val: np.ndarray | None = None, y_val: np.ndarray | None = None):
        self.X_val, self.y_val = X_val, y_val

    def on_train_begin(self, estimator: Any, n_epochs: int) -> None:
        import mlflow  # the active run belongs to the notebook's step_run

        self._mlflow = mlflow

    def on_epoch_end(self, estimator: Any, epoch: int, logs: dict[str, Any]) -> None:
        values = {k: float(v) for k, v in logs.items() if isinstance(v, (int, float, np.floating)) and k != "epoch"}
        if self.X_val is not None and "val_score" not in values and hasattr(estimator, "score"):
            values["val_score"] = float(estimator.score(self.X_val, self.y_val))
        if values:
            self._mlflow.log_metrics(values, step=int(epoch))
        return None

    def on_train_end(self, estimator: Any) -> None:
        return None
