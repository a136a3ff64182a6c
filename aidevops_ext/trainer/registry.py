"""Estimator classes by name, so a model file's spec can name the class to rebuild."""

from __future__ import annotations

from typing import Any

from ..errors import ModelFileError
from .linear import LinearRegression, LogisticRegression
from .mlp import MLPClassifier, MLPRegressor
from .scaling import Scaled

ESTIMATORS: dict[str, type] = {
    cls.__name__: cls for cls in (LinearRegression, LogisticRegression, MLPClassifier, MLPRegressor, Scaled)
}


def estimator_class(name: str) -> type[Any]:
    """The estimator class called `name`; ModelFileError for names this version does not know."""
    try:
        return ESTIMATORS[name]
    except (KeyError, TypeError):
        raise ModelFileError(
            f"The model file names an unknown estimator {name!r}; this version knows: {', '.join(ESTIMATORS)}."
        ) from None
