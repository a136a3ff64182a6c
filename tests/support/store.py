"""A real SQLite MLflow store for a test module, and MLflow's own model server on a version registered in it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from aidevops_ext.workspace import Workspace

# Settings that would point MLflow or aidevops at another store, experiment, run or workspace than a test's own.
STORE_SETTINGS = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "AIDEVOPS_HOME",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_EXPERIMENT_ID",
    "MLFLOW_RUN_ID",
)


@contextmanager
def module_store(root: Path) -> Iterator[Workspace]:
    """The workspace at `root`, its store the one MLflow uses in this process, with no store setting of the
    environment pointing elsewhere. It works from `root`: MLflow's Default experiment writes to ./mlruns, so a
    stray write lands there. MLflow keeps the URIs in process-wide state; they are put back afterwards, so
    later test modules do not find this store there."""
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    from aidevops_ext import registry

    with pytest.MonkeyPatch.context() as mp:
        for var in STORE_SETTINGS:
            mp.delenv(var, raising=False)
        mp.chdir(root)
        workspace = Workspace(root).ensure()
        saved = (tracking_utils._tracking_uri, registry_utils._registry_uri)
        registry.configure(workspace)
        try:
            yield workspace
        finally:
            tracking_utils._tracking_uri, registry_utils._registry_uri = saved


def mlflow_serve_command(model_uri: str, port: int) -> list[str]:
    """`mlflow models serve` on `model_uri` in this environment (no conda or virtualenv of its own), on 127.0.0.1."""
    where = ["--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    return [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri, *where]
