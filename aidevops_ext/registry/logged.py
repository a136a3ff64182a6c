"""The model a step's run logged with MLflow's own API (`mlflow.<flavor>.log_model`), and loading it.

A train notebook needs no aidevops API: whatever it logs inside its step's run is found here by
the run id the pipeline recorded. Each way this can go wrong ends in one sentence naming the fix:
no model logged, several logged and the spec does not say which, a model whose save failed (for
scikit-learn, MLflow's skops format refusing a type it does not trust), and a flavor that cannot load.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, ModelFileError
from ..workspace import Workspace
from .connection import client, translated

SKOPS_FIX = (
    'pass skops_trusted_types=[...] (the types MLflow lists) or serialization_format="cloudpickle" '
    "to mlflow.sklearn.log_model in the train notebook"
)


@dataclass(frozen=True)
class LoggedModelRef:
    """One READY model a run logged."""

    model_id: str
    name: str
    model_uri: str
    run_id: str


def find_logged_model(ws: Workspace, run_id: str, choose: str | None = None, *, step: str = "train") -> LoggedModelRef:
    """The one model run `run_id` logged (or the one named `choose`); ConfigError otherwise."""
    c = client(ws)
    with translated(
        f"The {step} step's MLflow run '{run_id}' does not exist in {ws.tracking_uri}; re-run the pipeline."
    ):
        run = c.get_run(run_id)
    found = c.search_logged_models(
        experiment_ids=[run.info.experiment_id], filter_string=f"source_run_id = '{run_id}'", max_results=100
    )
    ready = [m for m in found if _status(m) == "READY"]
    failed = [m for m in found if _status(m) == "FAILED"]
    if choose is not None:
        named = [m for m in ready if m.name == choose]
        if not named:
            if any(m.name == choose for m in failed):
                raise ConfigError(_failed_sentence(step, choose))
            names = ", ".join(sorted(m.name for m in ready)) or "none"
            raise ConfigError(
                f"The {step} step logged no model named '{choose}' (it logged: {names}); fix 'data.model' in the spec."
            )
        ready = named[-1:]  # logged twice under one name: the last one counts, as in a re-run cell
    if not ready:
        if failed:
            raise ConfigError(_failed_sentence(step, failed[0].name))
        raise ConfigError(
            f"The {step} step's run logged no model; log one in the {step} notebook with "
            'mlflow.<flavor>.log_model(model, name="model") (e.g. mlflow.sklearn.log_model).'
        )
    if len(ready) > 1:
        names = ", ".join(sorted(m.name for m in ready))
        raise ConfigError(
            f"The {step} step logged {len(ready)} models ({names}); say which one to evaluate with "
            f"'data: {{model: NAME}}' in the pipeline spec."
        )
    model = ready[0]
    return LoggedModelRef(model.model_id, model.name, f"models:/{model.model_id}", run_id)


def _status(model: Any) -> str:
    status = getattr(model, "status", None)
    return str(getattr(status, "value", status) or "")


def _failed_sentence(step: str, name: str) -> str:
    return (
        f"The {step} step started logging model '{name}' but saving it failed; for scikit-learn models, "
        f"MLflow's default skops format refuses types it does not trust (such as HistGradientBoosting): {SKOPS_FIX}."
    )


def explain_load_error(exc: BaseException, what: str) -> str:
    """One sentence for an exception raised while loading or saving a model through MLflow."""
    text = str(exc)
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    if "untrusted types" in text or "skops_trusted_types" in text:
        return f"MLflow's skops format refused {what} because it references types it does not trust: {SKOPS_FIX}."
    if isinstance(exc, ImportError):
        module = getattr(exc, "name", None) or first
        return (
            f"{what} needs the Python module '{module}', which this kernel cannot import; "
            "install the package its flavor needs (see the model's requirements.txt) and re-run."
        )
    if "python_function" in text:
        return f"{what} has no python_function flavor, so it cannot be scored here; log it with an MLflow flavor that supports pyfunc."
    return f"{what} cannot be loaded through mlflow.pyfunc ({type(exc).__name__}: {first[:200]}); re-log it with a flavor that loads here."


def known_cause(message: str) -> str | None:
    """One sentence for an error a notebook cell raised while logging a model with MLflow, when it is a known one."""
    if "untrusted types" in message and "skops" in message:
        return f"MLflow's skops format refused to save the model because it references types it does not trust: {SKOPS_FIX}"
    return None


def load_pyfunc(model_uri: str, what: str) -> Any:
    """`mlflow.pyfunc.load_model(model_uri)`, with a failure turned into one sentence (ModelFileError)."""
    import mlflow.pyfunc

    try:
        return mlflow.pyfunc.load_model(model_uri)
    except Exception as exc:  # noqa: BLE001 - any flavor's loader may raise anything; we name the fix
        raise ModelFileError(explain_load_error(exc, what)) from None
