"""MLflow runs of pipelines and steps.

The pipeline runner owns the runs: it creates a parent run per pipeline run and a nested
run per step through `MlflowClient` (so the runner process keeps no fluent "active run"),
and ends them. Notebooks only log into the step run they are handed, with `step_run`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..workspace import Workspace
from .connection import client, configure, translated

if TYPE_CHECKING:
    from mlflow import ActiveRun

_STATUSES = ("FINISHED", "FAILED", "KILLED")
_MAX_PARAM_VALUE = 6000  # MLflow's limit on a param value's length
_BATCH = 100  # MLflow's limit on params/tags per log_batch call


def experiment_id(ws: Workspace, name: str) -> str:
    """The id of experiment `name`, created (with the workspace's artifact root) if missing."""
    from mlflow.exceptions import MlflowException

    c = client(ws)
    exp = c.get_experiment_by_name(name)
    if exp is None:
        try:
            return c.create_experiment(name, artifact_location=ws.artifact_location)
        except MlflowException as exc:
            # Another process created it between our look-up and create.
            if getattr(exc, "error_code", None) != "RESOURCE_ALREADY_EXISTS":
                raise
            exp = c.get_experiment_by_name(name)
            if exp is None:
                raise
    if exp.lifecycle_stage == "deleted":
        raise ConfigError(
            f"MLflow experiment '{name}' is deleted: restore it (mlflow experiments restore) or use another name."
        )
    return exp.experiment_id


def _param_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    if len(text) > _MAX_PARAM_VALUE:
        text = text[: _MAX_PARAM_VALUE - 1] + "…"
    return text


def _log_params_and_tags(ws: Workspace, run_id: str, params: dict, tags: dict) -> None:
    from mlflow.entities import Param, RunTag

    c = client(ws)
    ps = [Param(str(k), _param_value(v)) for k, v in (params or {}).items()]
    ts = [RunTag(str(k), str(v)) for k, v in (tags or {}).items()]
    for i in range(0, len(ps), _BATCH):
        c.log_batch(run_id, params=ps[i : i + _BATCH])
    for i in range(0, len(ts), _BATCH):
        c.log_batch(run_id, tags=ts[i : i + _BATCH])


def start_pipeline_run(ws: Workspace, experiment: str, pipeline: str, params: dict, tags: dict) -> str:
    """Create the parent run of one pipeline run; returns its run id."""
    c = client(ws)
    run = c.create_run(
        experiment_id(ws, experiment),
        run_name=pipeline,
        tags={"aidevops.pipeline": pipeline, "aidevops.kind": "pipeline"},
    )
    _log_params_and_tags(ws, run.info.run_id, params, tags)
    return run.info.run_id


def start_step_run(ws: Workspace, parent_run_id: str, step: str, params: dict, tags: dict) -> str:
    """Create a step's run nested under the pipeline run; returns its run id."""
    c = client(ws)
    with translated(
        f"Pipeline run '{parent_run_id}' does not exist in {ws.tracking_uri}; start the pipeline run first."
    ):
        parent = c.get_run(parent_run_id)
    run = c.create_run(
        parent.info.experiment_id,
        run_name=step,
        tags={
            "mlflow.parentRunId": parent_run_id,
            "aidevops.step": step,
            "aidevops.kind": "step",
            "aidevops.pipeline": parent.data.tags.get("aidevops.pipeline", ""),
        },
    )
    _log_params_and_tags(ws, run.info.run_id, params, tags)
    return run.info.run_id


def end_run(run_id: str, status: str = "FINISHED", *, ws: Workspace | None = None) -> None:
    """Mark a run FINISHED, FAILED or KILLED (ws: configure URIs first; else MLflow's current ones)."""
    from mlflow import MlflowClient

    if status not in _STATUSES:
        raise ConfigError(f"Run status {status!r} is not one of {', '.join(_STATUSES)}.")
    c = client(ws) if ws is not None else MlflowClient()
    with translated(f"Run '{run_id}' does not exist; check the run id."):
        c.set_terminated(run_id, status)


def log_artifacts(
    run_id: str, paths: list[Path], artifact_path: str | None = None, *, ws: Workspace | None = None
) -> None:
    """Upload files (and folders, under their own name) into a run's artifacts."""
    from mlflow import MlflowClient

    c = client(ws) if ws is not None else MlflowClient()
    for path in map(Path, paths):
        if path.is_dir():
            sub = f"{artifact_path}/{path.name}" if artifact_path else path.name
            c.log_artifacts(run_id, str(path), sub)
        elif path.is_file():
            c.log_artifact(run_id, str(path), artifact_path)
        else:
            raise ConfigError(f"Cannot log artifact {path}: no such file or folder.")


@contextlib.contextmanager
def step_run(ws: Workspace, run_id: str | None, experiment: str, name: str) -> Iterator[ActiveRun]:
    """Log into the runner's run `run_id` (left open), or a standalone run ended on exit."""
    import mlflow

    configure(ws)
    active = mlflow.active_run()
    if run_id and active is not None and active.info.run_id == run_id:
        yield active
        return
    if run_id:
        c = client(ws)
        with translated(
            f"Run '{run_id}' does not exist in {ws.tracking_uri}; pass the run id the pipeline runner gave this step."
        ):
            before = c.get_run(run_id).info.status
        run = mlflow.start_run(run_id=run_id, nested=active is not None)
        try:
            yield run
        finally:
            # end_run pops the fluent stack; giving it the run's former status (RUNNING while
            # the runner owns it) leaves ending the run to the runner.
            mlflow.end_run(status=before)
        return
    run = mlflow.start_run(experiment_id=experiment_id(ws, experiment), run_name=name, nested=active is not None)
    try:
        yield run
    except BaseException:
        mlflow.end_run(status="KILLED" if _interrupted() else "FAILED")
        raise
    mlflow.end_run(status="FINISHED")


def _interrupted() -> bool:
    import sys

    return isinstance(sys.exc_info()[1], KeyboardInterrupt)
