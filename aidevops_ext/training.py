"""Train a model from a dataset in one call: what `aidevops train` does, without notebooks."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .evaluation import evaluate
from .monitoring.profile import build_profile
from .trainer import data, make_model, save_model


def train_model(
    dataset: str,
    *,
    target: str | None = None,
    kind: str = "mlp",
    output: Path = Path("model.npz"),
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    progress: bool | None = None,
    **hyper: Any,
) -> dict[str, Any]:
    """Load, split, fit, score on the test split, and write the model file with its profile."""
    ds = data.load_dataset(dataset, target=target)
    split = data.train_val_test_split(ds.X, ds.y, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
    estimator = make_model(kind, ds.task, random_state=seed, **hyper)
    t0 = time.perf_counter()
    estimator.fit(split.X_train, split.y_train, progress=progress)
    seconds = time.perf_counter() - t0
    scores = evaluate(estimator, split.X_test, split.y_test)
    profile = build_profile(split.X_train, feature_names=ds.feature_names, predictions=estimator.predict(split.X_val))
    path = save_model(
        estimator,
        output,
        profile=profile,
        metadata={"dataset": ds.name, "target": ds.target, "task": ds.task, "feature_names": list(ds.feature_names)},
    )
    return {
        "dataset": ds.name,
        "task": ds.task,
        "backend": getattr(estimator, "backend_", "?"),
        "seconds": seconds,
        "metrics": scores,
        "output": str(path),
    }
