"""Registry state a cached step depends on: aliases it reads, MLflow objects it produced.

A step's files can be unchanged while the registry moved (another run promoted a new champion) or
lost what the step made (mlflow.db deleted): the runner resolves the declared aliases once per run,
before any key is computed, and checks that a cache hit's MLflow run and model versions still exist.
For the workspace's own SQLite store (the default) those reads are plain SQL on MLflow's tables, so a
fully cached run still imports no MLflow (tests/integration/test_pipeline_e2e.py checks it); any other
store, or a file whose tables are not there yet, goes through MlflowClient.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from ..workspace import Workspace

DELETED_VERSION = "Deleted_Internal"  # MLflow's SQL store keeps a deleted version's row with this stage


class _NoFastPath(Exception):
    """The store is not a readable MLflow SQLite file: ask MlflowClient instead."""


def _sqlite_file(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None


def _query(uri: str, sql: str, args: tuple) -> list[tuple] | None:
    """Rows of `sql` on the SQLite store at `uri`; None when the file does not exist (nothing is stored)."""
    path = _sqlite_file(uri)
    if path is None:
        raise _NoFastPath
    if not path.is_file():
        return None
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=10)) as db:
            return db.execute(sql, args).fetchall()
    except sqlite3.OperationalError:  # no such table (an empty or older file): MLflow migrates it
        raise _NoFastPath from None


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
        return {f"{model}@{alias}": self._alias(model, alias) for model, alias in sorted(refs)}

    def _alias(self, model: str, alias: str) -> str | None:
        try:
            rows = _query(
                self.ws.registry_uri,
                "SELECT version FROM registered_model_aliases WHERE name = ? AND alias = ?",
                (model, alias),
            )
            return str(rows[0][0]) if rows else None
        except _NoFastPath:
            from ..registry.models import alias_version  # noqa: PLC0415 - imports MLflow

            return alias_version(self.ws, model, alias)

    def versions_of_run(self, run_id: str) -> list[dict[str, str]]:
        """The model versions registered with `run_id` as their run (what a register step made)."""
        found = self.client().search_model_versions(f"run_id = '{run_id}'")
        return sorted(
            ({"name": mv.name, "version": str(mv.version)} for mv in found),
            key=lambda v: (v["name"], int(v["version"])),
        )

    def missing(self, run_id: str | None, versions: list[dict[str, str]]) -> str | None:
        """Why a cached result's MLflow objects are gone (one sentence), or None when they all exist."""
        try:
            return self._missing_sql(run_id, versions)
        except _NoFastPath:
            return self._missing_mlflow(run_id, versions)

    def _missing_sql(self, run_id: str | None, versions: list[dict[str, str]]) -> str | None:
        if run_id:
            rows = _query(self.ws.tracking_uri, "SELECT lifecycle_stage FROM runs WHERE run_uuid = ?", (run_id,))
            if not rows or rows[0][0] == "deleted":
                return f"cached result not used: its MLflow run {run_id} no longer exists in {self.ws.tracking_uri}"
        for v in versions:
            rows = _query(
                self.ws.registry_uri,
                "SELECT current_stage FROM model_versions WHERE name = ? AND version = ?",
                (v["name"], int(v["version"])),
            )
            if not rows or rows[0][0] == DELETED_VERSION:
                return (
                    f"cached result not used: model version {v['name']} {v['version']} that it registered "
                    f"no longer exists in {self.ws.registry_uri}"
                )
        return None

    def _missing_mlflow(self, run_id: str | None, versions: list[dict[str, str]]) -> str | None:
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
                return (
                    f"cached result not used: model version {v['name']} {v['version']} that it registered "
                    f"no longer exists in {self.ws.registry_uri}"
                )
        return None
