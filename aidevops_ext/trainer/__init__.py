"""Array-backend trainer: scikit-learn style estimators on NumPy (CPU) or CuPy (GPU).

Cheap to import: NumPy only. scikit-learn, CuPy, tqdm and the model-file code load when used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .backend import Backend, cupy_available, get_backend
from .base import NotFittedError
from .callbacks import Callback, LambdaCallback, ProgressBar
from .factory import MODEL_KINDS, make_model
from .linear import LinearRegression, LogisticRegression
from .mlp import MLPClassifier, MLPRegressor
from .registry import ESTIMATORS, estimator_class
from .scaling import Scaled, StandardScaler


# The model-file functions live in .modelfile; importing it only when called keeps this package
# importable on its own and its import cheap.
def save_model(estimator: Any, path: str | Path, *, profile: dict | None = None, metadata: dict | None = None) -> Path:
    """Write a fitted estimator to a single .npz model file (see trainer.modelfile)."""
    from .modelfile import save_model as _save  # noqa: PLC0415

    return _save(estimator, path, profile=profile, metadata=metadata)


def load_model(path: str | Path, backend: str = "numpy") -> Any:
    """Load an estimator from a model file written by save_model (see trainer.modelfile)."""
    from .modelfile import load_model as _load  # noqa: PLC0415

    return _load(path, backend=backend)


def read_model_info(path: str | Path) -> dict:
    """Read a model file's spec without loading its weights (see trainer.modelfile)."""
    from .modelfile import read_model_info as _info  # noqa: PLC0415

    return _info(path)


__all__ = [
    "Backend",
    "Callback",
    "ESTIMATORS",
    "MODEL_KINDS",
    "Scaled",
    "StandardScaler",
    "make_model",
    "LambdaCallback",
    "LinearRegression",
    "LogisticRegression",
    "MLPClassifier",
    "MLPRegressor",
    "NotFittedError",
    "ProgressBar",
    "cupy_available",
    "estimator_class",
    "get_backend",
    "load_model",
    "read_model_info",
    "save_model",
]
