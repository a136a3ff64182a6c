"""Linear models: least-squares regression in closed form, logistic/softmax regression by mini-batch training."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from ..errors import ModelFileError
from .backend import get_backend
from .base import BaseEstimator, RegressorMixin, check_number, check_targets, check_X, resolve_dtype
from .callbacks import CallbackList
from .mlp import _ClassifierNet, _construct, _engine_init, _jsonable


class LinearRegression(RegressorMixin, BaseEstimator):
    """Ordinary least squares (ridge when l2 > 0), solved in closed form with lstsq."""

    def __init__(
        self, fit_intercept: bool = True, l2: float = 0.0, backend: str = "auto", dtype: str = "float32"
    ) -> None:
        self.fit_intercept = fit_intercept
        self.l2 = l2
        self.backend = backend
        self.dtype = dtype

    def fit(self, X: Any, y: Any, callbacks: Any = None, progress: bool | None = None) -> LinearRegression:
        """Solve min ||X w + b - y||^2 + l2 ||w||^2; callbacks see it as a single epoch."""
        check_number("l2", self.l2, 0)
        dtype = resolve_dtype(self.dtype)
        X = check_X(X, dtype)
        y = check_targets(y, X.shape[0], dtype)
        be = get_backend(self.backend)
        xp = be.xp
        cbs = CallbackList(callbacks, progress)
        cbs.on_train_begin(self, 1)
        t0 = time.perf_counter()
        try:
            # Solved in float64 whatever the dtype: float32 normal equations lose digits, and the solve is tiny.
            Xd = be.asarray(X, dtype=np.float64)
            Yd = be.asarray(y.reshape(len(y), -1), dtype=np.float64)
            if self.fit_intercept:
                x_mean, y_mean = Xd.mean(axis=0), Yd.mean(axis=0)
                Xd, Yd = Xd - x_mean, Yd - y_mean
            if self.l2:
                # Ridge as an augmented least-squares problem: better conditioned than (X'X + l2 I)^-1 X'y.
                d = Xd.shape[1]
                Xd = xp.concatenate([Xd, math.sqrt(self.l2) * xp.eye(d)])
                Yd = xp.concatenate([Yd, xp.zeros((d, Yd.shape[1]))])
            coef = xp.linalg.lstsq(Xd, Yd, rcond=None)[0].T  # (n_outputs, n_features)
            intercept = (y_mean - coef @ x_mean) if self.fit_intercept else xp.zeros(coef.shape[0])
            self._backend = be
            self._coef: np.ndarray = be.asnumpy(coef).astype(dtype)
            self._intercept: np.ndarray = be.asnumpy(intercept).astype(dtype)
            self.n_features_in_, self.backend_, self._y_ndim = X.shape[1], be.name, y.ndim
            self.n_outputs_ = self._coef.shape[0]
            pred = X @ self._coef.T + self._intercept
            mse = float(np.mean((pred - y.reshape(len(y), -1)) ** 2))
            logs = {"epoch": 1, "loss": 0.5 * mse, "seconds": time.perf_counter() - t0}
            self.history_ = [logs]
            self.n_iter_, self.loss_ = 1, logs["loss"]
            cbs.on_epoch_end(self, 1, logs)
        finally:
            cbs.on_train_end(self)
        return self

    @property
    def coef_(self) -> np.ndarray:
        """Coefficients: (n_features,) for 1-D y, else (n_outputs, n_features)."""
        self._check_fitted()
        return self._coef[0] if self._y_ndim == 1 else self._coef

    @property
    def intercept_(self) -> Any:
        """Intercept: a scalar for 1-D y, else one per output."""
        self._check_fitted()
        return self._intercept[0] if self._y_ndim == 1 else self._intercept

    def predict(self, X: Any) -> np.ndarray:
        """Predicted targets, shaped like the y given to fit."""
        self._check_fitted()
        X = check_X(X, self._coef.dtype, self.n_features_in_)
        pred = X @ self._coef.T
        pred += self._intercept
        return pred[:, 0] if self._y_ndim == 1 else pred

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """JSON-able spec and host arrays for the model file."""
        self._check_fitted()
        fitted = {
            "n_features_in_": int(self.n_features_in_),
            "n_outputs_": int(self.n_outputs_),
            "y_ndim": int(self._y_ndim),
            "backend_": self.backend_,
            "history_": _jsonable(self.history_),
        }
        spec = {"estimator": type(self).__name__, "params": _jsonable(self.get_params()), "fitted": fitted}
        return spec, {"coef": self._coef.copy(), "intercept": self._intercept.copy()}

    @classmethod
    def _from_state(cls, spec: dict[str, Any], arrays: dict[str, np.ndarray], backend: str = "numpy") -> Any:
        """Rebuild a fitted LinearRegression from _get_state() output."""
        est = _construct(cls, spec)
        try:
            fitted = spec["fitted"]
            dtype = resolve_dtype(est.dtype)
            coef: np.ndarray = np.asarray(arrays["coef"]).astype(dtype)
            intercept: np.ndarray = np.asarray(arrays["intercept"]).astype(dtype)
            if coef.ndim != 2 or intercept.shape != (coef.shape[0],) or coef.shape[1] != int(fitted["n_features_in_"]):
                raise ModelFileError(
                    "The model file's LinearRegression arrays have inconsistent shapes; the file is damaged."
                )
            est._backend = get_backend(backend)
            est._coef, est._intercept = coef, intercept
            est.n_features_in_, est.n_outputs_, est._y_ndim = coef.shape[1], coef.shape[0], int(fitted["y_ndim"])
            est.backend_ = est._backend.name
            est.history_ = list(fitted.get("history_", []))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"The model file's LinearRegression state is invalid ({exc}).") from None
        return est


class LogisticRegression(_ClassifierNet):
    """Logistic (binary) or softmax (multinomial) regression, trained by the MLP's mini-batch engine."""

    __init__ = _engine_init(learning_rate=0.05, batch_size=64, epochs=50)

    def _hidden(self) -> tuple[int, ...]:
        return ()

    def _activation_name(self) -> str:
        return "identity"

    @property
    def coef_(self) -> np.ndarray:
        """Weights, (1, n_features) for two classes else (n_classes, n_features), as in scikit-learn."""
        self._check_fitted()
        return self._backend.asnumpy(self._net.layers[0][:-1]).T.copy()

    @property
    def intercept_(self) -> np.ndarray:
        """Biases, one per output column of coef_."""
        self._check_fitted()
        return self._backend.asnumpy(self._net.layers[0][-1]).copy()


__all__ = ["LinearRegression", "LogisticRegression"]
