"""Foreign MLflow pyfunc models for the server tests (pickled by value, so the server needs no test import)."""

from __future__ import annotations

import mlflow.pyfunc
import numpy as np


class SumModel(mlflow.pyfunc.PythonModel):
    """Sums the numeric columns of each row: a column-signature pyfunc served through MLflow's loader."""

    def predict(self, context, model_input, params=None):
        return np.asarray(model_input.select_dtypes("number").sum(axis=1), dtype=np.float64)


class NaNModel(mlflow.pyfunc.PythonModel):
    """Returns NaN for every row: must be refused by the smoke test."""

    def predict(self, context, model_input, params=None):
        return np.full(len(model_input), np.nan)


class BrokenModel(mlflow.pyfunc.PythonModel):
    """Fails while loading: must be refused before any traffic reaches it."""

    def load_context(self, context):
        raise RuntimeError("this model version cannot load")

    def predict(self, context, model_input, params=None):  # pragma: no cover - never loaded
        return np.zeros(len(model_input))
