"""Feature standardisation that travels inside the model file.

Serving receives raw features; a model trained on standardised ones must carry its scaling, or
every client would have to repeat it. `Scaled` wraps any estimator: it learns mean and scale on
the training data, and applies them before every fit/predict, including in saved models.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import BaseEstimator, NotFittedError, check_X
from .callbacks import Callback, LambdaCallback


class StandardScaler(BaseEstimator):
    """(x - mean) / std per feature; constant features get scale 1 so they map to 0, not NaN."""

    def __init__(self, dtype: str = "float32") -> None:
        self.dtype = dtype

    def fit(self, X: Any, y: Any = None) -> StandardScaler:
        """Learn mean and scale from X."""
        X = check_X(X, np.dtype(self.dtype).type)
        self.mean_ = X.mean(axis=0, dtype=np.float64).astype(X.dtype)
        std = X.std(axis=0, dtype=np.float64)
        self.scale_ = np.where(std > 0, std, 1.0).astype(X.dtype)
        self.n_features_in_ = X.shape[1]
        return self

    def check(self, X: Any) -> np.ndarray:
        """X validated against the fitted feature count and dtype."""
        if getattr(self, "mean_", None) is None:
            raise NotFittedError("StandardScaler is not fitted yet; call fit(X) first.")
        return check_X(X, self.mean_.dtype.type, self.n_features_in_)

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Standardised copy of X (X already checked)."""
        if getattr(self, "mean_", None) is None:
            raise NotFittedError("StandardScaler is not fitted yet; call fit(X) first.")
        out = np.subtract(X, self.mean_, dtype=self.mean_.dtype)
        out /= self.scale_
        return out


class Scaled(BaseEstimator):
    """An estimator behind a StandardScaler; exposes the inner estimator's fitted attributes."""

    def __init__(self, estimator: Any = None) -> None:
        self.estimator = estimator

    def fit(self, X: Any, y: Any, callbacks: Any = None, progress: bool | None = None) -> Scaled:
        """Fit the scaler on X, then the inner estimator on the scaled X."""
        self.scaler_ = StandardScaler(getattr(self.estimator, "dtype", "float32")).fit(X)
        relays = [_Relay(cb if isinstance(cb, Callback) else LambdaCallback(cb), self) for cb in (callbacks or [])]
        self.estimator.fit(self.scaler_.transform(self.scaler_.check(X)), y, callbacks=relays, progress=progress)
        return self

    def _scaled(self, X: Any) -> np.ndarray:
        if getattr(self, "scaler_", None) is None:
            raise NotFittedError("This Scaled model is not fitted yet; call fit(X, y) or load a model file first.")
        return self.scaler_.transform(self.scaler_.check(X))

    def predict(self, X: Any) -> np.ndarray:
        """Predictions of the inner estimator on scaled X."""
        return self.estimator.predict(self._scaled(X))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities of the inner classifier on scaled X."""
        if not hasattr(self.estimator, "predict_proba"):
            raise AttributeError(f"{type(self.estimator).__name__} has no predict_proba")
        return self.estimator.predict_proba(self._scaled(X))

    def score(self, X: Any, y: Any) -> float:
        """The inner estimator's score (accuracy or R^2) on scaled X."""
        return self.estimator.score(self._scaled(X), y)

    def __getattr__(self, name: str) -> Any:
        # Fitted attributes (classes_, history_, backend_, ...) live on the inner estimator.
        if name.endswith("_") and not name.startswith("__") and "estimator" in self.__dict__:
            return getattr(self.__dict__["estimator"], name)
        raise AttributeError(name)

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Model-file state: the inner estimator's, plus the scaler's two arrays."""
        inner_spec, inner_arrays = self.estimator._get_state()
        arrays = {f"inner.{k}": v for k, v in inner_arrays.items()}
        arrays["scaler.mean"], arrays["scaler.scale"] = self.scaler_.mean_, self.scaler_.scale_
        return {"estimator": "Scaled", "params": {}, "inner": inner_spec}, arrays

    @classmethod
    def _from_state(cls, spec: dict[str, Any], arrays: dict[str, np.ndarray], backend: str = "numpy") -> Scaled:
        """Rebuild from _get_state() output."""
        from .registry import estimator_class

        inner_spec = spec.get("inner") or {}
        inner_arrays = {k[len("inner.") :]: v for k, v in arrays.items() if k.startswith("inner.")}
        inner = estimator_class(str(inner_spec.get("estimator")))._from_state(inner_spec, inner_arrays, backend=backend)
        model = cls(inner)
        scaler = StandardScaler(str(arrays["scaler.mean"].dtype))
        scaler.mean_, scaler.scale_ = arrays["scaler.mean"], arrays["scaler.scale"]
        scaler.n_features_in_ = int(scaler.mean_.shape[0])
        model.scaler_ = scaler
        return model


class _Relay(Callback):
    """Passes callback events on with the outer (scaling) estimator, so callbacks can predict raw X."""

    def __init__(self, callback: Any, outer: Scaled):
        self.callback, self.outer = callback, outer

    def on_train_begin(self, estimator: Any, n_epochs: int) -> None:
        self.callback.on_train_begin(self.outer, n_epochs)

    def on_epoch_end(self, estimator: Any, epoch: int, logs: dict) -> bool | None:
        return self.callback.on_epoch_end(self.outer, epoch, logs)

    def on_train_end(self, estimator: Any) -> None:
        self.callback.on_train_end(self.outer)
