"""Registry state a cached step depends on: aliases it reads, MLflow objects it produced.

A step's files can be unchanged while the registry moved (another run promoted a new champion) or
lost what the step made (mlflow.db deleted): the runner resolves the declared aliases once per run,
before any key is computed, and checks that a cache hit's MLflow run and model versions still exist.
MLflow is imported only when a pipeline declares `reads:` or a hit recorded MLflow objects.
"""

from __future__ import annotations

from typing import Any

from ..workspace import Workspace


class RegistryState:
    """Lazily connected reader of the workspace's MLflow registry for one pipeline run."""

    def __init__(self, ws: Workspace):
        self.ws = ws
        self._client: Any = None

    def client(self) -> Any:
        if self._client is None:
            from .. import registry  # noqa: PLC0415 - imports MLflow

            registry.configure(self.ws)
            from mlflow import MlflowClient  # noqa: PLC0415

            self._client = MlflowClient(tracking_uri=self.ws.tracking_uri, registry_uri=self.ws.registry_uri)
        return self._client

    def aliases(self, refs: set[tuple[str, str]]) -> dict[str, str | None]:
        """`model@alias` -> the version it points at now (None when the model or alias does not exist)."""
        from ..registry.models import alias_version  # noqa: PLC0415

        return {f"{model}@{alias}": alias_version(self.ws, model, alias) for model, alias in sorted(refs)} if refs else {}

    def versions_of_run(self, run_id: str) -> list[dict[str, str]]:
        """The model versions registered with `run_id` as their run (what a register step made)."""
        found = self.client().search_model_versions(f"run_id = '{run_id}'")
        return sorted(({"name": mv.name, "version": str(mv.version)} for mv in found), key=lambda v: (v["name"], int(v["version"])))

    def missing(self, run_id: str | None, versions: list[dict[str, str]]) -> str | None:
        """Why a cached result's MLflow objects are gone (one sentence), or None when they all exist."""
        from mlflow.exceptions import MlflowException  # noqa: PLC0415

        from ..registry.connection import error_code  # noqa: PLC0415

        c = self.client()
        gone = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")  # anything else (a server down) is raised
        if run_id:
            try:
                deleted = c.get_run(run_id).info.lifecycle_stage == "deleted"
            except MlflowException as exc:
                if error_code(exc) not in gone:
                    raise
                deleted = True
            if deleted:
                return f"cached result not used: its MLflow run {run_id} no longer exists in {self.ws.tracking_uri}"
        for v in versions:
            try:
                c.get_model_version(v["name"], v["version"])
            except MlflowException as exc:
                if error_code(exc) not in gone:
                    raise
                return (f"cached result not used: model version {v['name']} {v['version']} that it registered "
                        f"no longer exists in {self.ws.registry_uri}")
        return None
