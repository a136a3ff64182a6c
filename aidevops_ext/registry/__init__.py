"""MLflow layer: runs of pipelines and steps, model versions, aliases, lineage, gate decisions.

Importing this package is cheap: MLflow is imported inside the functions that use it.

- `connection`: `configure`, `check_tracking` (explicit URIs; unreachable servers fail fast).
- `runs`: experiments, pipeline/step runs owned by the runner, `step_run` for notebooks.
- `models`: pyfunc logging of `.npz` model files, versions, aliases, promotion, listing.
"""

from .connection import check_tracking, configure
from .models import (
    CHALLENGER,
    CHAMPION,
    alias_version,
    delete_alias,
    list_models,
    load_alias_model,
    log_model,
    promote_if_passing,
    register_version,
    set_alias,
    version_metrics,
)
from .runs import end_run, experiment_id, log_artifacts, start_pipeline_run, start_step_run, step_run

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "alias_version",
    "check_tracking",
    "configure",
    "delete_alias",
    "end_run",
    "experiment_id",
    "list_models",
    "load_alias_model",
    "log_artifacts",
    "log_model",
    "promote_if_passing",
    "register_version",
    "set_alias",
    "start_pipeline_run",
    "start_step_run",
    "step_run",
    "version_metrics",
]
