"""MLflow models: logging aidevops model files as pyfunc models, versions, aliases, gate promotion.

Registry stages are deprecated; this uses aliases (`champion`, `challenger`). Aliases are
read from `get_registered_model(name).aliases` because `search_model_versions` returns
empty aliases on SQL stores (MLflow issues 9783, 16734).
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__, splitting
from ..errors import ConfigError, NotFound
from ..gate import GateDecision
from ..workspace import Workspace
from .connection import client, error_code, translated

CHAMPION = "champion"
CHALLENGER = "challenger"
MODEL_ARTIFACT = "model"
LOADER_MODULE = "aidevops_ext.pyfunc_model"
METRIC_TAG = "metric."  # version tags holding a copy of the metrics the version was judged on
# Lineage: the row keys (aidevops_ext/splitting.py) of what a version trained on, as an artifact of
# the run that registered it; the version tag names the artifact's URI. The gate reads it to leave
# those rows out of a later comparison.
TRAIN_KEYS_TAG = "aidevops.train_keys"
TRAIN_KEYS_ARTIFACT = "lineage/train_keys.npy"
# A retraining under `promote: manual` (aidevops_ext/loop.py) holds `champion` while its pipeline runs: the register
# step, whichever notebook calls promote_if_passing, then leaves the new version `challenger` for a person.
HOLD_TAG = "aidevops.hold_champion"
HOLD_SECONDS = 6 * 3600  # a hold from another machine (its process cannot be checked) lapses after this


def _example_rows(estimator: Any) -> np.ndarray:
    """A float32 input example: the reference profile's feature means, else zeros."""
    n = int(estimator.n_features_in_)
    profile = getattr(estimator, "profile_", None) or {}
    means = [f.get("mean") for f in profile.get("features", [])] if isinstance(profile, dict) else []
    if len(means) == n and all(isinstance(m, (int, float)) and math.isfinite(m) for m in means):
        row = np.asarray(means, dtype=np.float32)
    else:
        row = np.zeros(n, dtype=np.float32)
    return row.reshape(1, n)


def log_model(
    ws: Workspace, run_id: str, model_file: Path, *, name: str | None = None, input_example: Any = None
) -> dict[str, Any]:
    """Log a `.npz` model file into run `run_id` as a pyfunc model (and register it as `name`)."""
    import mlflow.pyfunc
    from mlflow.models import Model, infer_signature

    from ..pyfunc_model import as_features
    from ..trainer import load_model

    model_file = Path(model_file)
    if not model_file.is_file():
        raise ConfigError(f"Model file {model_file} does not exist; train the model first.")
    estimator = load_model(model_file)
    example = _example_rows(estimator) if input_example is None else as_features(input_example)
    # A tensor signature (float32, (-1, n_features)) lets MLflow's server skip per-column parsing.
    signature = infer_signature(example, np.asarray(estimator.predict(example)))
    c = client(ws)
    with translated(f"Run '{run_id}' does not exist in {ws.tracking_uri}; log the model into an existing run."):
        run = c.get_run(run_id)
    # Created here, in the run's experiment: left to itself MLflow files the model under the
    # fluent "current" experiment (Default, artifacts in ./mlruns) when no run is active.
    logged = c.create_logged_model(
        experiment_id=run.info.experiment_id,
        name=MODEL_ARTIFACT,
        source_run_id=run_id,
        tags={"aidevops.model_file": model_file.name, "aidevops.estimator": type(estimator).__name__},
    )
    try:
        info = Model.log(
            artifact_path=None,
            name=MODEL_ARTIFACT,
            flavor=mlflow.pyfunc,
            run_id=run_id,
            model_id=logged.model_id,
            loader_module=LOADER_MODULE,
            data_path=str(model_file),
            signature=signature,
            input_example=example,
            # Explicit requirements: inferring them re-loads the model in a subprocess (seconds).
            pip_requirements=[f"aidevops-ext=={__version__}", f"numpy=={np.__version__}"],
            metadata={"aidevops_estimator": type(estimator).__name__},
        )
    except BaseException:
        c.finalize_logged_model(logged.model_id, "FAILED")
        raise
    c.finalize_logged_model(logged.model_id, "READY")
    result: dict[str, Any] = {
        "model_uri": info.model_uri,
        "model_id": logged.model_id,
        "run_id": run_id,
        "artifact_path": MODEL_ARTIFACT,
        "signature": signature.to_dict(),
        "registered_model": name,
        "version": None,
    }
    if name:
        result["version"] = register_version(ws, info.model_uri, name, run_id=run_id, tags={})
    return result


def register_version(
    ws: Workspace,
    model_uri: str,
    name: str,
    *,
    run_id: str,
    tags: dict[str, Any],
    metrics: dict[str, float] | None = None,
) -> str:
    """Register `model_uri` as a new version of `name` with lineage tags; returns the version."""
    from mlflow.exceptions import MlflowException

    c = client(ws)
    try:
        c.create_registered_model(name)
    except MlflowException as exc:
        if error_code(exc) == "INVALID_PARAMETER_VALUE":
            raise ConfigError(f"Registered model name {name!r} is invalid: {exc.message.splitlines()[0]}") from None
        if error_code(exc) != "RESOURCE_ALREADY_EXISTS":
            raise
    model_id = model_uri[len("models:/") :] if model_uri.startswith("models:/m-") else None
    all_tags = {str(k): str(v) for k, v in (tags or {}).items()}
    all_tags.update({f"{METRIC_TAG}{k}": repr(float(v)) for k, v in (metrics or {}).items()})
    mv = c.create_model_version(name, model_uri, run_id=run_id, tags=all_tags, model_id=model_id)
    return str(mv.version)


def log_train_keys(ws: Workspace, run_id: str, keys: np.ndarray) -> str:
    """Log training row keys into run `run_id` as lineage/train_keys.npy; returns its ``runs:/`` URI."""
    c = client(ws)
    with translated(f"Run '{run_id}' does not exist in {ws.tracking_uri}; log the keys into an existing run."):
        c.get_run(run_id)
    folder = Path(tempfile.mkdtemp(prefix="aidevops-keys-"))
    try:
        path = splitting.save_keys(folder / Path(TRAIN_KEYS_ARTIFACT).name, np.unique(keys))
        c.log_artifact(run_id, str(path), str(Path(TRAIN_KEYS_ARTIFACT).parent))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return f"runs:/{run_id}/{TRAIN_KEYS_ARTIFACT}"


def load_keys_artifact(ws: Workspace, uri: str) -> np.ndarray:
    """Row keys from an artifact URI written by `log_train_keys` (read without pickle)."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    folder = Path(tempfile.mkdtemp(prefix="aidevops-keys-"))
    try:
        try:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=uri, dst_path=str(folder), tracking_uri=ws.tracking_uri
            )
        except (MlflowException, OSError) as exc:
            raise ConfigError(
                f"Training keys {uri} cannot be downloaded ({type(exc).__name__}); "
                "re-register the version or remove its aidevops.train_keys tag."
            ) from None
        return splitting.load_keys(local)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def version_train_keys(ws: Workspace, name: str, version: str | int) -> np.ndarray | None:
    """The training row keys a version recorded (tag `aidevops.train_keys`), or None when it recorded none."""
    uri = _version(ws, name, version).tags.get(TRAIN_KEYS_TAG)
    return load_keys_artifact(ws, uri) if uri else None


def _registered(ws: Workspace, name: str) -> Any:
    from mlflow.exceptions import MlflowException

    c = client(ws)
    try:
        return c.get_registered_model(name)
    except MlflowException as exc:
        if error_code(exc) not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise
    names = sorted(m.name for m in c.search_registered_models(max_results=1000))
    known = ", ".join(names) if names else "none yet"
    raise NotFound(f"No registered model named '{name}' (registered models: {known}); register a version first.")


def _version(ws: Workspace, name: str, version: str | int) -> Any:
    _registered(ws, name)
    with translated(
        f"Model '{name}' has no version {version}; see `aidevops models {name}` for its versions.",
        "RESOURCE_DOES_NOT_EXIST",
        "INVALID_PARAMETER_VALUE",
    ):
        return client(ws).get_model_version(name, str(version))


def set_alias(ws: Workspace, name: str, alias: str, version: str | int) -> None:
    """Point `name@alias` at `version`."""
    _version(ws, name, version)
    client(ws).set_registered_model_alias(name, alias, str(version))


def alias_version(ws: Workspace, name: str, alias: str) -> str | None:
    """The version `name@alias` points at, or None when the model or alias does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        model = client(ws).get_registered_model(name)
    except MlflowException as exc:
        if error_code(exc) == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    version = model.aliases.get(alias)
    return None if version is None else str(version)


def delete_alias(ws: Workspace, name: str, alias: str) -> None:
    """Remove `name@alias`; ConfigError if the model has no such alias."""
    model = _registered(ws, name)
    if alias not in model.aliases:
        known = ", ".join(sorted(model.aliases)) or "none"
        raise ConfigError(f"Model '{name}' has no alias '{alias}' (its aliases: {known}).")
    client(ws).delete_registered_model_alias(name, alias)


def _download_model_file(ws: Workspace, name: str, version: str, folder: Path) -> Path:
    import mlflow.artifacts
    from mlflow.models import Model

    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}", dst_path=str(folder)))
    flavor = Model.load(str(local)).flavors.get("python_function", {})
    if flavor.get("loader_module") != LOADER_MODULE or "data" not in flavor:
        raise ConfigError(
            f"Model '{name}' version {version} is not an aidevops model file; load it with mlflow.pyfunc instead."
        )
    data = local / flavor["data"]
    found = [data] if data.is_file() else sorted(data.glob("*.npz"))
    if len(found) != 1:
        raise ConfigError(
            f"Model '{name}' version {version} holds no single .npz model file; re-log it with registry.log_model."
        )
    return found[0]


def load_alias_model(ws: Workspace, name: str, alias: str = CHAMPION) -> Any | None:
    """The trainer estimator behind `name@alias`, or None if there is no such model or alias."""
    from ..trainer import load_model

    version = alias_version(ws, name, alias)
    if version is None:
        return None
    folder = Path(tempfile.mkdtemp(prefix="aidevops-model-"))
    try:
        estimator = load_model(_download_model_file(ws, name, version, folder))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    # Where it came from, for logs and for the gate's "compared with champion vN".
    estimator.registered_model_ = {"name": name, "version": version, "alias": alias}
    return estimator


def version_metrics(ws: Workspace, name: str, version: str | int) -> dict[str, float]:
    """Metrics of a version: its source run's, overridden by copies stored on the version's tags."""
    return _metrics_of(ws, _version(ws, name, version))


def _metrics_of(ws: Workspace, mv: Any) -> dict[str, float]:
    from mlflow.exceptions import MlflowException

    metrics: dict[str, float] = {}
    if mv.run_id:
        try:
            metrics.update(client(ws).get_run(mv.run_id).data.metrics)
        except MlflowException:  # the run may be deleted; the tag copies still stand
            pass
    decision = mv.tags.get("gate.decision")
    if decision:
        try:
            candidate = json.loads(decision).get("candidate") or {}
            metrics.update({k: float(v) for k, v in candidate.items() if v is not None})
        except (ValueError, TypeError, AttributeError):
            pass
    for key, value in mv.tags.items():
        if key.startswith(METRIC_TAG):
            try:
                metrics[key[len(METRIC_TAG) :]] = float(value)
            except ValueError:
                pass
    return metrics


def hold_champion(ws: Workspace, name: str, holder: str) -> None:
    """Hold `name@champion` for `holder` (this process) until `release_champion`; see HOLD_TAG."""
    import os  # noqa: PLC0415
    import socket  # noqa: PLC0415
    import time  # noqa: PLC0415

    _registered(ws, name)
    value = {"by": holder, "pid": os.getpid(), "host": socket.gethostname(), "at": time.time()}
    client(ws).set_registered_model_tag(name, HOLD_TAG, json.dumps(value))


def release_champion(ws: Workspace, name: str, holder: str) -> None:
    """End `holder`'s hold of `name@champion` (another holder's is left alone)."""
    held = _hold(ws, name)
    if held is not None and held.get("by") == holder:
        client(ws).delete_registered_model_tag(name, HOLD_TAG)


def _hold(ws: Workspace, name: str) -> dict[str, Any] | None:
    from mlflow.exceptions import MlflowException  # noqa: PLC0415

    try:
        raw = client(ws).get_registered_model(name).tags.get(HOLD_TAG)
    except MlflowException:
        return None
    try:
        value = json.loads(raw) if raw else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def champion_held(ws: Workspace, name: str) -> str | None:
    """Who holds `name@champion` now, or None (a hold whose process ended, or an old one from elsewhere, lapsed)."""
    import os  # noqa: PLC0415
    import socket  # noqa: PLC0415
    import time  # noqa: PLC0415

    held = _hold(ws, name)
    if held is None:
        return None
    if held.get("host") == socket.gethostname():
        try:
            os.kill(int(held["pid"]), 0)
        except (KeyError, OSError, TypeError, ValueError):
            return None  # the retraining that held it is gone
    elif time.time() - float(held.get("at") or 0) > HOLD_SECONDS:
        return None
    return str(held.get("by") or "a retraining")


def promote_if_passing(ws: Workspace, name: str, version: str | int, decision: GateDecision, *, run_id: str) -> bool:
    """Record the gate decision; alias `challenger` the version and, on pass, `champion`. True if champion moved.

    While a retraining under `promote: manual` holds champion (hold_champion), a passing version stays
    `challenger`, tagged as awaiting approval: `champion` moves when a person approves it (aidevops_ext/loop.py)."""
    version = str(version)
    _version(ws, name, version)
    c = client(ws)
    with translated(f"Run '{run_id}' does not exist in {ws.tracking_uri}; pass the run that ran the gate."):
        c.get_run(run_id)
    current = alias_version(ws, name, CHAMPION)
    judged = None if decision.champion_version is None else str(decision.champion_version)
    # The gate compared against one champion; if another run moved it since, the decision is stale.
    if judged != current and current != version:
        against = f"v{judged}" if judged else "no champion"
        raise ConfigError(
            f"The gate judged '{name}' v{version} against {against}, but the champion is now "
            f"{'v' + current if current else 'unset'}; re-run the gate against the current champion."
        )
    for key, value in decision.to_tags().items():
        c.set_model_version_tag(name, version, key, value)
    for metric, score in decision.candidate.items():
        c.set_model_version_tag(name, version, f"{METRIC_TAG}{metric}", repr(float(score)))
    folder = Path(tempfile.mkdtemp(prefix="aidevops-gate-"))
    try:
        (folder / "decision.md").write_text(decision.to_markdown(), encoding="utf-8")
        (folder / "decision.json").write_text(json.dumps(decision.to_dict(), indent=2), encoding="utf-8")
        c.log_artifacts(run_id, str(folder), "gate")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    c.set_tag(run_id, "gate.passed", str(decision.passed).lower())
    c.set_tag(run_id, "gate.version", f"{name}/{version}")
    c.set_registered_model_alias(name, CHALLENGER, version)
    if not decision.passed:
        return False
    if champion_held(ws, name):
        c.set_model_version_tag(name, version, "aidevops.awaiting_approval", "true")
        return False
    if current and current != version:
        c.set_model_version_tag(name, version, "aidevops.previous_champion", current)
    c.set_registered_model_alias(name, CHAMPION, version)
    return True


def _iso(ms: int | None) -> str | None:
    return None if not ms else datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="seconds")


def _gate_comparison(mv: Any) -> dict[str, Any] | None:
    """What the gate compared for this version: both models' metrics on the same rows, and which rows."""
    blob = mv.tags.get("gate.decision")
    if not blob:
        return None
    try:
        decision = GateDecision.from_dict(json.loads(blob))
    except (ValueError, ConfigError, AttributeError):
        return None
    return {
        "summary": decision.headline(),
        "compared_on": decision.compared_on(),
        "candidate": decision.candidate,
        "champion": decision.champion,
        "champion_version": decision.champion_version,
        "rows": decision.comparison,
    }


def _version_row(ws: Workspace, mv: Any, aliases: dict[str, str]) -> dict[str, Any]:
    gate = mv.tags.get("gate.passed")
    comparison = _gate_comparison(mv)
    return {
        "version": str(mv.version),
        "aliases": sorted(a for a, v in aliases.items() if str(v) == str(mv.version)),
        "run_id": mv.run_id,
        "model_id": getattr(mv, "model_id", None),
        "source": mv.source,
        "status": mv.status,
        "created": _iso(mv.creation_timestamp),
        "gate_passed": None if gate is None else gate == "true",
        "gate_reasons": mv.tags.get("gate.reasons"),
        # The gate's own comparison (candidate vs champion on the same rows), shown beside the badge;
        # `metrics` below are this version's alone, possibly on another split than a neighbour's.
        "gate_comparison": comparison,
        "gate_summary": None if comparison is None else comparison["summary"],
        "metrics": _metrics_of(ws, mv),
        "tags": {k: v for k, v in mv.tags.items() if not k.startswith(("gate.", METRIC_TAG))},
    }


def list_models(ws: Workspace, name: str | None = None) -> list[dict[str, Any]]:
    """Registered models with their versions, aliases, gate results, metrics and lineage (JSON-able)."""
    c = client(ws)
    models = [_registered(ws, name)] if name else list(c.search_registered_models(max_results=1000))
    rows = []
    for model in sorted(models, key=lambda m: m.name):
        aliases = {a: str(v) for a, v in model.aliases.items()}
        quoted = model.name.replace("'", "\\'")
        versions = c.search_model_versions(f"name = '{quoted}'", max_results=10000)
        rows.append(
            {
                "name": model.name,
                "description": model.description or "",
                "aliases": aliases,
                "created": _iso(model.creation_timestamp),
                "versions": [_version_row(ws, mv, aliases) for mv in sorted(versions, key=lambda v: -int(v.version))],
            }
        )
    return rows
