"""A foreign MLflow model on a mixed table, registered as the issue's user does it.

`tabular` v1: a scikit-learn Pipeline (OneHotEncoder on two text-category columns, the numeric columns
passed through, HistGradientBoostingClassifier, which handles missing values itself) logged with
`mlflow.sklearn.log_model` and an input example, its reference profile (build_frame_profile) logged as a
run artifact whose URI is the model-version tag `aidevops.reference_profile`, as the register step does.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aidevops_ext import registry
from aidevops_ext.monitoring.frameprofile import build_frame_profile
from tests.serving.conftest import _ENV_VARS, Registry, _run

NAME = "tabular"
COLUMNS = ["income", "age", "city", "plan"]
CITIES = ["paris", "lyon", "nice"]


def table(seed: int, n: int, city_p=(0.6, 0.3, 0.1), missing: float = 0.05) -> pd.DataFrame:
    """Rows like the training table: income (with missing values), age, city, plan."""
    rng = np.random.default_rng(seed)
    income = rng.normal(50.0, 10.0, n)
    income[rng.random(n) < missing] = np.nan
    return pd.DataFrame(
        {
            "income": income,
            "age": rng.integers(18, 90, n).astype(float),
            "city": rng.choice(CITIES, n, p=list(city_p)).astype(object),
            "plan": rng.choice(["basic", "pro"], n).astype(object),
        }
    )


def labels(frame: pd.DataFrame) -> np.ndarray:
    """The target the model learns: rich outside nice, or in nice."""
    return ((frame["income"].fillna(50.0) > 50.0) ^ (frame["city"] == "nice")).astype(int).to_numpy()


_REGISTERED: dict[str, str] = {}  # session registry root -> version


def register(reg: Registry) -> str:
    """Register `tabular` v1 once per session registry; returns its version."""
    if str(reg.root) in _REGISTERED:
        return _REGISTERED[str(reg.root)]
    import mlflow
    from mlflow.models import infer_signature
    from sklearn.compose import make_column_transformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    X = table(0, 2000)
    y = labels(X)
    pipe = make_pipeline(
        make_column_transformer((OneHotEncoder(handle_unknown="ignore"), ["city", "plan"]), remainder="passthrough"),
        HistGradientBoostingClassifier(max_iter=30, random_state=0),
    ).fit(X, y)
    profile = build_frame_profile(X, predictions=pipe.predict(table(1, 500)))
    with pytest.MonkeyPatch.context() as mp:  # MLflow's fluent API must not write to the repo
        for var in _ENV_VARS:
            mp.delenv(var, raising=False)
        mp.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        mp.chdir(reg.root)
        run_id = _run(reg.ws)
        registry.configure(reg.ws)
        with mlflow.start_run(run_id=run_id):
            info = mlflow.sklearn.log_model(
                pipe,
                name="model",
                signature=infer_signature(X, pipe.predict(X)),
                input_example=X.head(3),
                serialization_format="cloudpickle",
                pip_requirements=[],
            )
            mlflow.log_dict(profile, "reference_profile.json")
        version = registry.register_version(
            reg.ws,
            info.model_uri,
            NAME,
            run_id=run_id,
            tags={"aidevops.reference_profile": f"runs:/{run_id}/reference_profile.json"},
        )
    _REGISTERED[str(reg.root)] = version
    return version
