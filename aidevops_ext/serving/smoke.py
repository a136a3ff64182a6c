"""The smoke test a model version must pass before it takes traffic.

Reference rows come from the model's data profile (feature means, medians, minima, maxima), else its
MLflow input example, else zeros. They go through the same parsing as a request (an MLflow `inputs`
body for fast models), then predict: a version that raises, returns the wrong number of rows, NaN or
infinite values, labels outside its classes, or probabilities that are not a distribution is refused.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import orjson

from .errors import ModelRefused, RequestError
from .models import PyfuncModel, ServedModel, finite_outputs


def reference_rows(model: ServedModel) -> tuple[list[list[float]] | None, str]:
    """Rows to smoke-test with, and where they came from."""
    n = model.n_features
    feats = (model.profile or {}).get("features") if isinstance(model.profile, dict) else None
    if n and isinstance(feats, list) and len(feats) == n:
        rows = []
        for pick in (_stat("mean"), _stat("min"), _stat("max"), _median):
            row = [pick(f) for f in feats]
            if all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in row):
                rows.append([float(v) for v in row])
        if rows:
            return rows, "profile"
    if n:
        return [[0.0] * n, [1.0] * n], "zeros"
    return None, "none"


def _stat(key: str):
    return lambda f: f.get(key) if isinstance(f, dict) else None


def _median(f: Any) -> Any:
    edges = f.get("bin_edges") if isinstance(f, dict) else None
    return edges[len(edges) // 2] if isinstance(edges, list) and edges else None


def smoke_test(model: ServedModel) -> dict[str, Any]:
    """Run the reference rows through parse + predict; returns a summary or raises ModelRefused."""
    start = time.perf_counter()
    try:
        if model.fast or not isinstance(model, PyfuncModel):
            summary = _smoke_fast(model)
        else:
            summary = _smoke_pyfunc(model)
    except ModelRefused:
        raise
    except RequestError as exc:
        raise ModelRefused(f"{model.label} failed its smoke test: {exc.message}") from None
    except Exception as exc:  # noqa: BLE001 - whatever a broken model raises, it must not take traffic
        raise ModelRefused(f"{model.label} failed its smoke test: {type(exc).__name__}: {str(exc)[:300]}") from None
    summary["seconds"] = round(time.perf_counter() - start, 6)
    summary["ok"] = True
    return summary


def _refuse(model: ServedModel, problem: str) -> ModelRefused:
    return ModelRefused(f"{model.label} failed its smoke test: {problem}; it was not put into service.")


def _smoke_fast(model: ServedModel) -> dict[str, Any]:
    from .protocols import mlflow as mlflow_proto  # noqa: PLC0415

    rows, origin = reference_rows(model)
    if rows is None:
        raise _refuse(model, "the model declares no feature count")
    X, _ = mlflow_proto.parse(orjson.dumps({"inputs": rows}), mlflow_proto.JSON, model)
    preds = model.predict(X)
    _check_predictions(model, preds, len(rows))
    estimator = getattr(model, "estimator", None)
    if estimator is not None and not np.array_equal(preds, np.asarray(estimator.predict(X))):
        raise _refuse(model, "the server's predict path disagrees with the estimator's own predict")
    proba = model.predict_proba(X)
    if proba is not None:
        proba = np.asarray(proba)
        expected = [len(rows), len(model.classes) if model.classes is not None else 0]
        if list(proba.shape) != expected:
            raise _refuse(model, f"predict_proba returned shape {list(proba.shape)}, expected {expected}")
        if not np.isfinite(proba).all():
            raise _refuse(model, "predict_proba returned NaN or infinite probabilities")
        if not np.allclose(proba.sum(axis=1), 1.0, atol=1e-3) or (proba < -1e-6).any():
            raise _refuse(model, "predict_proba returned rows that are not probability distributions")
    orjson.loads(mlflow_proto.render(preds, "smoke"))  # the response encodes
    return {"rows": len(rows), "input": origin}


def _smoke_pyfunc(model: PyfuncModel) -> dict[str, Any]:
    example, origin = _pyfunc_example(model)
    if example is None:
        return {"rows": 0, "input": "none", "note": "no input example or signature: predictions not checked"}
    preds = model.predict(example)
    n = len(example) if hasattr(example, "__len__") else None
    _check_predictions(model, preds, n)
    return {"rows": n, "input": origin}


def _pyfunc_example(model: PyfuncModel) -> tuple[Any, str]:
    if model.input_example is not None:
        return model.input_example, "example"
    schema = model.input_schema
    if schema is None:
        return None, "none"
    if model.tensor_input and model.n_features:
        return np.zeros((2, model.n_features), dtype=model.input_dtype), "zeros"
    if not schema.is_tensor_spec() and schema.has_input_names():
        import pandas as pd  # noqa: PLC0415

        cols = {}
        for spec in schema.inputs:
            t = str(getattr(spec.type, "name", spec.type))
            cols[spec.name] = {"boolean": [False, True], "string": ["", "a"], "binary": [b"", b"a"]}.get(t, [0, 1])
        try:
            return pd.DataFrame(cols).astype(dict(zip(schema.input_names(), schema.pandas_types()))), "zeros"
        except Exception:  # noqa: BLE001 - types pandas cannot build: no synthetic input
            return None, "none"
    return None, "none"


def _check_predictions(model: ServedModel, preds: Any, n_rows: int | None) -> None:
    if preds is None:
        raise _refuse(model, "predict returned nothing")
    try:
        length = len(preds)
    except TypeError:
        length = None
    if n_rows is not None and length is not None and length != n_rows:
        raise _refuse(model, f"predict returned {length} predictions for {n_rows} rows")
    values = preds.to_numpy() if hasattr(preds, "to_numpy") else preds
    if not finite_outputs(values):
        raise _refuse(model, "predict returned NaN or infinite values")
    if model.classes is not None and model.task == "classification":
        if not np.isin(np.asarray(values), model.classes).all():
            raise _refuse(model, "predict returned labels outside the model's classes")
