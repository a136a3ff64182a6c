"""Build an estimator from a model kind, a task and flat hyperparameters (what pipelines and the CLI pass)."""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from .linear import LinearRegression, LogisticRegression
from .mlp import MLPClassifier, MLPRegressor
from .scaling import Scaled

# (kind, task) -> estimator class: a registry, so adding a model is one line, not an if-chain.
MODEL_KINDS: dict[tuple[str, str], type[Any]] = {
    ("mlp", "classification"): MLPClassifier,
    ("mlp", "regression"): MLPRegressor,
    ("logistic", "classification"): LogisticRegression,
    ("linear", "regression"): LinearRegression,
}
# Flat names used in pipeline specs and on the command line -> constructor names.
_ALIASES = {"hidden": "hidden_layer_sizes", "seed": "random_state"}


def make_model(kind: str, task: str, *, standardize: bool = True, **hyper: Any) -> Any:
    """An unfitted estimator of `kind` for `task`; hyperparameters the class does not take are ignored.

    Ignoring them lets one pipeline spec carry, say, `hidden` and `epochs` while a `linear` run
    uses neither; a misspelled name that no model knows is still an error.
    """
    try:
        cls = MODEL_KINDS[(kind, task)]
    except KeyError:
        valid = ", ".join(f"{k} ({t})" for k, t in MODEL_KINDS)
        raise ConfigError(f"no model kind '{kind}' for a {task} task; valid kinds: {valid}.") from None
    params = {_ALIASES.get(k, k): v for k, v in hyper.items()}
    known = {name for c in MODEL_KINDS.values() for name in c._param_names()}
    unknown = sorted(set(params) - known)
    if unknown:
        raise ConfigError(f"unknown model parameter(s) {', '.join(unknown)}; valid ones: {', '.join(sorted(known))}.")
    if "hidden_layer_sizes" in params and params["hidden_layer_sizes"] is not None:
        sizes = params["hidden_layer_sizes"]
        params["hidden_layer_sizes"] = tuple(sizes) if isinstance(sizes, (list, tuple)) else (sizes,)
    accepted = set(cls._param_names())
    estimator = cls(**{k: v for k, v in params.items() if k in accepted})
    return Scaled(estimator) if standardize else estimator
