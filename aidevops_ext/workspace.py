"""Where state lives: the workspace folder, its `.aidevops/` directory, and URI resolution.

A workspace is a project folder with a hidden `.aidevops/` (docs/architecture.md §3). The root is, in order:
`AIDEVOPS_HOME`, the nearest parent of the current directory holding `.aidevops/` or
`pipelines/`, else the current directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

STATE_DIR = ".aidevops"
_ROOT_MARKERS = (STATE_DIR, "pipelines")


def find_root(start: Path | None = None) -> Path:
    """Return the workspace root for `start` (default: the current directory)."""
    env = os.environ.get("AIDEVOPS_HOME")
    if env:
        return Path(env).expanduser().resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if any((folder / marker).is_dir() for marker in _ROOT_MARKERS):
            return folder
    return here


class _Under:
    """A workspace path: `name` in its root or its state folder (`folder`: "root" or "state")."""

    def __init__(self, folder: str, name: str) -> None:
        self.folder, self.name = folder, name

    def __get__(self, ws: Workspace, owner: type | None = None) -> Path:
        return getattr(ws, self.folder) / self.name


@dataclass(frozen=True)
class Workspace:
    """Paths and settings of one workspace; creating it writes nothing until `ensure()`."""

    root: Path

    @classmethod
    def discover(cls, start: Path | None = None) -> Workspace:
        """The workspace containing `start` (or the current directory)."""
        return cls(find_root(start))

    @property
    def state(self) -> Path:
        return self.root / STATE_DIR

    runs_dir = _Under("state", "runs")
    cache_dir = _Under("state", "cache")
    models_dir = _Under("state", "models")
    artifacts_dir = _Under("state", "mlartifacts")
    deploy_db = _Under("state", "deploy.db")
    pipelines_dir = _Under("root", "pipelines")

    @property
    def tracking_uri(self) -> str:
        """MLflow tracking URI: `MLFLOW_TRACKING_URI` if set, else the workspace's SQLite store."""
        return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{self.state / 'mlflow.db'}"

    @property
    def registry_uri(self) -> str:
        """MLflow registry URI: `MLFLOW_REGISTRY_URI`, else the tracking URI."""
        return os.environ.get("MLFLOW_REGISTRY_URI") or self.tracking_uri

    @property
    def artifact_location(self) -> str | None:
        """Artifact root for new experiments; None lets a remote tracking server decide."""
        # Decided by the URI, not by whether the variable is set: mlflow.set_tracking_uri() exports
        # MLFLOW_TRACKING_URI itself, so "is it set" cannot tell a user's server from our own store.
        if self.tracking_uri.startswith(("http://", "https://", "databricks")):
            return None
        return self.artifacts_dir.as_uri()

    @property
    def backend(self) -> str:
        """Array backend requested for training (`AIDEVOPS_BACKEND`, default `auto`)."""
        return os.environ.get("AIDEVOPS_BACKEND", "auto")

    def ensure(self) -> Workspace:
        """Create the state folders; returns self."""
        for folder in (self.state, self.runs_dir, self.cache_dir, self.models_dir, self.artifacts_dir):
            folder.mkdir(parents=True, exist_ok=True)
        return self
