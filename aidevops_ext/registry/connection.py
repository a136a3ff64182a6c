"""Connecting to MLflow: explicit URIs from the workspace, a fast reachability check, error translation."""

from __future__ import annotations

import contextlib
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..workspace import Workspace

if TYPE_CHECKING:
    from mlflow import MlflowClient

_URI_VARS = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
# URIs that answered once in this process; MLflow's own retries cover later hiccups.
_reachable: set[str] = set()


def _is_http(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def check_tracking(ws: Workspace, timeout: float = 3.0) -> None:
    """Raise ConfigError within `timeout` seconds if an http(s) tracking server does not answer."""
    uri = ws.tracking_uri
    if not _is_http(uri) or uri in _reachable:
        return
    try:
        # urllib, not MLflow's client: MLflow retries with backoff for minutes before failing.
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout):
            pass
    except urllib.error.HTTPError:
        pass  # Any HTTP answer (401, 404 behind a proxy...) means a server is there.
    except (urllib.error.URLError, OSError, ValueError):
        raise ConfigError(
            f"MLflow tracking server at {uri} is unreachable: start it or unset MLFLOW_TRACKING_URI "
            "to use the workspace's local store."
        ) from None
    _reachable.add(uri)


def configure(ws: Workspace) -> None:
    """Point MLflow at the workspace's tracking and registry URIs (creating local state)."""
    import mlflow

    if _is_http(ws.tracking_uri):
        check_tracking(ws)
    else:
        ws.ensure()
    # MLflow's setters also export MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI into os.environ.
    # The workspace reads those variables as "the user chose a server" (then every later
    # Workspace in this process, whatever its root, would resolve to this store and lose its
    # artifact root), so the environment is put back as the user left it.
    saved = {var: os.environ.get(var) for var in _URI_VARS}
    try:
        mlflow.set_tracking_uri(ws.tracking_uri)
        mlflow.set_registry_uri(ws.registry_uri)
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


def client(ws: Workspace) -> MlflowClient:
    """A client bound to the workspace's URIs (after `configure`)."""
    from mlflow import MlflowClient

    configure(ws)
    return MlflowClient(tracking_uri=ws.tracking_uri, registry_uri=ws.registry_uri)


def error_code(exc: BaseException) -> str | None:
    """MLflow's error code name for an exception (e.g. RESOURCE_DOES_NOT_EXIST), else None."""
    return getattr(exc, "error_code", None)


@contextlib.contextmanager
def translated(message: str, *codes: str) -> Iterator[None]:
    """Turn MlflowExceptions with one of `codes` into ConfigError(message)."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        if error_code(exc) in (codes or ("RESOURCE_DOES_NOT_EXIST",)):
            raise ConfigError(message) from None
        raise
