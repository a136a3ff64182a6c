"""The MLflow `python_function` loader for aidevops model files.

Models are logged with `loader_module="aidevops_ext.pyfunc_model"` and the `.npz` model
file as `data_path`, so MLflow stores no pickled Python object at all: loading calls
`_load_pyfunc(<copied .npz>)`, which rebuilds the estimator from weights + JSON spec with
the trainer's `load_model`. This is what `mlflow models serve --env-manager local` and
`mlflow.pyfunc.load_model("models:/NAME@champion")` run.

The module imports neither MLflow nor pandas at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["AidevopsModel", "as_features", "_load_pyfunc"]


def as_features(model_input: Any, dtype: Any = np.float32) -> np.ndarray:
    """A 2-D float array from a DataFrame, ndarray, nested list or single row."""
    to_numpy = getattr(model_input, "to_numpy", None)
    if to_numpy is not None:  # pandas DataFrame/Series without importing pandas
        array = to_numpy(dtype=dtype)
    else:
        array = np.asarray(model_input, dtype=dtype)
    if array.ndim == 1:
        array = array.reshape(1, -1)
    return array


class AidevopsModel:
    """What `mlflow.pyfunc` wraps: an aidevops estimator with MLflow's predict signature."""

    def __init__(self, estimator: Any, model_file: Path | None = None) -> None:
        self.estimator = estimator
        self.model_file = model_file

    @classmethod
    def load(cls, model_file: str | Path) -> AidevopsModel:
        """Load an aidevops `.npz` model file (weights + JSON spec, no pickle)."""
        from .trainer import load_model

        path = Path(model_file)
        return cls(load_model(path), path)

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> np.ndarray:
        """Predictions for a batch: class labels for classifiers, values for regressors."""
        return np.asarray(self.estimator.predict(as_features(model_input)))

    def predict_proba(self, model_input: Any) -> np.ndarray:
        """Class probabilities (classifiers only); not reachable through MLflow's predict."""
        return np.asarray(self.estimator.predict_proba(as_features(model_input)))


def _load_pyfunc(data_path: str) -> AidevopsModel:
    """MLflow's loader_module hook: `data_path` is the model's copy of the `.npz` file."""
    path = Path(data_path)
    if path.is_dir():
        # Older layouts or hand-made models may point at a folder holding the file.
        candidates = sorted(path.glob("*.npz"))
        if len(candidates) != 1:
            from .errors import ModelFileError

            raise ModelFileError(f"Expected one .npz model file in {path}, found {len(candidates)}; re-log the model.")
        path = candidates[0]
    return AidevopsModel.load(path)
