"""Estimator base classes: scikit-learn style parameters, input checks and scores."""

from __future__ import annotations

import inspect
import numbers
from typing import Any

import numpy as np

from ..errors import AidevopsError, ConfigError, DataError

DTYPES = {"float32": np.float32, "float64": np.float64}


class NotFittedError(AidevopsError, ValueError, AttributeError):
    """An estimator was used before fit(); ValueError/AttributeError like scikit-learn's."""


class BaseEstimator:
    """get_params/set_params read from the __init__ signature, as in scikit-learn."""

    @classmethod
    def _param_names(cls) -> list[str]:
        """Constructor parameter names, in signature order."""
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values() if p.name != "self" and p.kind == p.POSITIONAL_OR_KEYWORD]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Return the constructor parameters as a dict (deep is accepted for scikit-learn)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> BaseEstimator:
        """Set constructor parameters by name and return self; unknown names raise ConfigError."""
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise ConfigError(
                    f"{type(self).__name__} has no parameter {name!r}; valid parameters are: {', '.join(valid)}."
                )
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = {
            p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values() if p.name != "self"
        }
        changed = [f"{k}={v!r}" for k, v in self.get_params().items() if not _same(v, defaults.get(k))]
        return f"{type(self).__name__}({', '.join(changed)})"

    def __sklearn_tags__(self) -> Any:
        """Estimator tags for scikit-learn >= 1.6 utilities (cross_val_score, is_classifier, ...)."""
        from sklearn.utils import ClassifierTags, RegressorTags, Tags, TargetTags  # noqa: PLC0415 - only sklearn calls this

        kind = getattr(self, "_estimator_type", None)
        return Tags(
            estimator_type=kind,
            target_tags=TargetTags(required=True),
            classifier_tags=ClassifierTags() if kind == "classifier" else None,
            regressor_tags=RegressorTags() if kind == "regressor" else None,
        )

    def _check_fitted(self) -> None:
        """Raise NotFittedError unless fit() (or loading) has run."""
        if getattr(self, "n_features_in_", None) is None:
            raise NotFittedError(
                f"This {type(self).__name__} is not fitted yet; call fit(X, y) or load a model file before predicting."
            )


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b) and type(a) is type(b)
    except Exception:  # noqa: BLE001 - arrays and odd objects: treat as changed
        return False


class ClassifierMixin:
    """score() is mean accuracy."""

    _estimator_type = "classifier"

    def score(self, X: Any, y: Any) -> float:
        """Mean accuracy of predict(X) against y."""
        y = _as_1d_labels(y)
        pred = self.predict(X)  # type: ignore[attr-defined]
        _check_lengths(len(pred), len(y))
        return float(np.mean(pred == y))


class RegressorMixin:
    """score() is the coefficient of determination R^2."""

    _estimator_type = "regressor"

    def score(self, X: Any, y: Any) -> float:
        """R^2 of predict(X) against y (averaged uniformly over outputs)."""
        y = np.asarray(y, dtype=np.float64)
        pred = np.asarray(self.predict(X), dtype=np.float64)  # type: ignore[attr-defined]
        _check_lengths(len(pred), len(y))
        return r2(y, pred)


def r2(y: np.ndarray, pred: np.ndarray) -> float:
    """R^2, uniform average over outputs; a constant target scores 1 if matched exactly, else 0."""
    y = y.reshape(len(y), -1).astype(np.float64)
    pred = pred.reshape(len(pred), -1).astype(np.float64)
    ss_res = ((y - pred) ** 2).sum(axis=0)
    ss_tot = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = np.where(ss_tot > 0, 1.0 - ss_res / np.where(ss_tot > 0, ss_tot, 1.0), (ss_res == 0).astype(float))
    return float(scores.mean())


def resolve_dtype(dtype: Any) -> type:
    """Map the dtype parameter ('float32' | 'float64') to a NumPy type."""
    try:
        key = np.dtype(dtype).name
    except TypeError:
        key = None
    if key not in DTYPES:
        raise ConfigError(f"dtype must be 'float32' or 'float64', got {dtype!r}.")
    return DTYPES[key]


def check_X(X: Any, dtype: type | np.dtype, n_features: int | None = None, what: str = "X") -> np.ndarray:
    """Return X as a 2-D finite array of `dtype`, or raise DataError saying what is wrong."""
    if X is None:
        raise DataError(f"{what} is None; pass a 2-D array of shape (n_samples, n_features).")
    if not isinstance(X, np.ndarray) or X.dtype != dtype:
        try:
            X = np.asarray(X, dtype=dtype)
        except (TypeError, ValueError) as exc:
            raise DataError(f"{what} must be numeric (convertible to {np.dtype(dtype).name}): {exc}.") from None
    if X.ndim != 2:
        raise DataError(
            f"{what} must be 2-D (n_samples, n_features) but has shape {X.shape}; "
            "use X.reshape(-1, 1) for a single feature or X.reshape(1, -1) for a single sample."
        )
    if X.shape[0] == 0:
        raise DataError(f"{what} is empty (0 samples); pass at least one row.")
    if n_features is not None and X.shape[1] != n_features:
        raise DataError(
            f"{what} has {X.shape[1]} features but the model was fitted with {n_features}; pass the same columns."
        )
    if X.shape[1] == 0:
        raise DataError(f"{what} has no features (0 columns); pass at least one column.")
    if not np.isfinite(X).all():
        raise DataError(f"{what} contains NaN or infinite values; impute or drop them before calling this.")
    return X


def _check_lengths(n_x: int, n_y: int) -> None:
    if n_x != n_y:
        raise DataError(f"X has {n_x} samples but y has {n_y}; pass one target per row of X.")


def _as_1d_labels(y: Any) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.ravel()
    if y.ndim != 1:
        raise DataError(f"y must be 1-D (one label per sample) but has shape {y.shape}.")
    return y


def check_labels(y: Any, n_samples: int) -> np.ndarray:
    """Return classification labels as a 1-D int/str/bool/float array with no missing values."""
    y = _as_1d_labels(y)
    _check_lengths(n_samples, len(y))
    if y.dtype == object:
        kinds = {type(v) for v in y.tolist()}
        if kinds <= {str}:
            y = y.astype(str)
        elif all(issubclass(k, numbers.Integral) for k in kinds):
            y = y.astype(np.int64)
        else:
            raise DataError("Class labels must all be integers or all be strings; convert y to one type.")
    if y.dtype.kind not in "iubUSf":
        raise DataError(f"Class labels of dtype {y.dtype} are not supported; use integers or strings.")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise DataError("y contains NaN or infinite labels; drop those rows before fitting.")
    return y


def check_targets(y: Any, n_samples: int, dtype: type) -> np.ndarray:
    """Return regression targets as a finite (n_samples,) or (n_samples, k) array."""
    try:
        y = np.asarray(y, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise DataError(f"Regression targets must be numeric: {exc}.") from None
    if y.ndim not in (1, 2):
        raise DataError(f"y must be 1-D or 2-D but has shape {y.shape}.")
    _check_lengths(n_samples, len(y))
    if not np.isfinite(y).all():
        raise DataError("y contains NaN or infinite values; drop those rows before fitting.")
    return y


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    """Raise ConfigError unless value is one of choices."""
    if value not in choices:
        raise ConfigError(f"{name}={value!r} is not supported; use one of: {', '.join(choices)}.")
    return value


def check_number(
    name: str,
    value: Any,
    low: float,
    high: float | None = None,
    *,
    integer: bool = False,
    low_open: bool = False,
    high_open: bool = False,
) -> Any:
    """Raise ConfigError unless value is a number within [low, high] (open ends as asked)."""
    kind = numbers.Integral if integer else numbers.Real
    ok = isinstance(value, kind) and not isinstance(value, bool)
    if ok:
        ok = (value > low if low_open else value >= low) and (
            high is None or (value < high if high_open else value <= high)
        )
    if not ok:
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        rng = f"{lo}{low}, {'inf' if high is None else high}{hi}"
        raise ConfigError(f"{name} must be {'an integer' if integer else 'a number'} in {rng}, got {value!r}.")
    return value
