"""Which model version a deployment serves, and the evidence that the served copy predicts like the registry's.

- `parse_target("NAME@ALIAS" | "NAME/VERSION" | "models:/...")` splits what the user asked for;
- `resolve(ws, target)` asks the registry which version that is now;
- `reference(ws, model, version)` downloads the version once into `.aidevops/deploy-cache/NAME/VERSION/`,
  keeps its `.npz` (so a restarted server loads it in milliseconds, without MLflow) and the registry
  model's own predictions (through `mlflow.pyfunc`) on the version's reference rows;
- `check_predictions(ref, outputs)` compares what a server answered with those predictions.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..workspace import Workspace

_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
_TARGET = re.compile(
    rf"^(?:models:/)?(?P<name>{_NAME})(?:@(?P<alias>[A-Za-z0-9_-]{{1,64}})|/v?(?P<version>\d{{1,9}}|latest))?$"
)
CACHE_DIR = "deploy-cache"
LOADER_MODULE = "aidevops_ext.pyfunc_model"


@dataclass(frozen=True)
class Target:
    """A model reference: a registered model with an alias or a version (neither: its `champion`)."""

    model: str
    alias: str | None = None
    version: str | None = None

    @property
    def text(self) -> str:
        """`NAME@ALIAS` or `NAME/VERSION`."""
        return f"{self.model}@{self.alias}" if self.alias else f"{self.model}/{self.version}"

    @property
    def uri(self) -> str:
        """The MLflow model URI."""
        return f"models:/{self.text}"


def parse_target(text: str) -> Target:
    """`NAME@ALIAS`, `NAME/VERSION`, `models:/...` or a bare NAME (= NAME@champion); ConfigError otherwise."""
    m = _TARGET.match(str(text or "").strip())
    if not m:
        raise ConfigError(
            f"{str(text)[:100]!r} is not a model reference; write NAME@ALIAS (e.g. digits-classifier@champion) "
            "or NAME/VERSION (e.g. digits-classifier/3)."
        )
    if m["version"]:
        return Target(m["name"], version=m["version"])
    return Target(m["name"], alias=m["alias"] or "champion")


def parse_version(text: str) -> str:
    """`3` or `v3` → `3`; ConfigError otherwise."""
    m = re.fullmatch(r"v?(\d{1,9})", str(text or "").strip())
    if not m:
        raise ConfigError(
            f"{str(text)[:60]!r} is not a model version; give a number such as 3 (see `aidevops models`)."
        )
    return str(int(m[1]))


def resolve(ws: Workspace, target: Target) -> str:
    """The version `target` names now; ConfigError naming the model's versions and aliases if it names none."""
    from .. import registry  # noqa: PLC0415 - MLflow only when a deployment changes

    registry.configure(ws)
    if target.alias:
        version = registry.alias_version(ws, target.model, target.alias)
        if version is None:
            models = registry.list_models(ws, target.model)  # ConfigError if the model does not exist
            aliases = ", ".join(sorted(models[0]["aliases"])) or "none"
            raise ConfigError(
                f"Model '{target.model}' has no alias '{target.alias}' (its aliases: {aliases}); "
                "deploy NAME/VERSION or set the alias first."
            )
        return version
    if target.version == "latest":
        versions = [v["version"] for v in registry.list_models(ws, target.model)[0]["versions"]]
        if not versions:
            raise ConfigError(f"Model '{target.model}' has no versions yet; register one first.")
        return str(max(int(v) for v in versions))
    from mlflow.exceptions import MlflowException  # noqa: PLC0415

    try:
        registry.connection.client(ws).get_model_version(target.model, str(target.version))
    except MlflowException:
        versions = [
            v["version"] for v in registry.list_models(ws, target.model)[0]["versions"]
        ]  # ConfigError: no model
        known = ", ".join(sorted(versions, key=int)) or "none"
        raise ConfigError(
            f"Model '{target.model}' has no version {target.version} (its versions: {known}); see `aidevops models`."
        ) from None
    return str(target.version)


# --------------------------------------------------------------------------- the cache


def cache_dir(ws: Workspace, model: str, version: str) -> Path:
    """Folder of one cached version."""
    return ws.state / CACHE_DIR / model / str(version)


def cached_model_file(ws: Workspace, model: str, version: str) -> Path | None:
    """The cached `.npz` of an aidevops model version, if there is one (no MLflow needed)."""
    path = cache_dir(ws, model, version) / "model.npz"
    return path if path.is_file() else None


@dataclass
class Reference:
    """Reference rows of a version and the registry model's predictions on them (None: not checkable)."""

    model: str
    version: str
    kind: str  # "aidevops" (checked) | "pyfunc" (a foreign model: the server's smoke test is the check)
    rows: list[list[float]] | None = None
    expected: list[Any] | None = None
    task: str | None = None
    origin: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return dict(self.__dict__)


def reference(ws: Workspace, model: str, version: str) -> Reference:
    """The cached Reference of a version, made on first use (downloads the version, runs MLflow's pyfunc on it)."""
    folder = cache_dir(ws, model, version)
    ref_file = folder / "reference.json"
    if ref_file.is_file():
        try:
            return Reference(**json.loads(ref_file.read_text(encoding="utf-8")))
        except (ValueError, TypeError):
            pass  # a damaged cache entry is rebuilt
    ref = _build_reference(ws, model, version, folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = ref_file.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(ref.to_dict()), encoding="utf-8")
    os.replace(tmp, ref_file)
    return ref


def _build_reference(ws: Workspace, model: str, version: str, folder: Path) -> Reference:
    import numpy as np  # noqa: PLC0415
    import yaml  # noqa: PLC0415

    from .. import registry  # noqa: PLC0415

    registry.configure(ws)
    tmp = Path(tempfile.mkdtemp(prefix="aidevops-deploy-"))
    try:
        local = _download(f"models:/{model}/{version}", tmp)
        flavor = (yaml.safe_load((local / "MLmodel").read_text(encoding="utf-8")) or {}).get("flavors", {}).get(
            "python_function"
        ) or {}
        if flavor.get("loader_module") != LOADER_MODULE or "data" not in flavor:
            return Reference(model, version, "pyfunc", origin="foreign pyfunc: checked by the server's smoke test")
        data = local / flavor["data"]
        found = [data] if data.is_file() else sorted(data.glob("*.npz"))
        if len(found) != 1:
            return Reference(model, version, "pyfunc", origin="no single .npz: checked by the server's smoke test")
        from ..serving.models import AidevopsModel  # noqa: PLC0415
        from ..serving.smoke import reference_rows  # noqa: PLC0415
        from ..trainer import load_model  # noqa: PLC0415

        try:
            served = AidevopsModel.from_estimator(
                load_model(found[0]), name=model, version=version, source=f"models:/{model}/{version}"
            )
        except Exception:  # noqa: BLE001 - the server refuses this version with its own reason
            return Reference(model, version, "broken", origin="the model file does not load")
        rows, origin = reference_rows(served)
        if rows is None:
            return Reference(model, version, "pyfunc", origin="no reference rows")
        import mlflow.pyfunc  # noqa: PLC0415

        try:
            pyfunc = mlflow.pyfunc.load_model(str(local))
            expected = np.asarray(pyfunc.predict(np.asarray(rows, dtype=served.input_dtype)))
        except Exception:  # noqa: BLE001
            return Reference(model, version, "broken", origin="MLflow's loader cannot predict with it")
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / "model.npz"
        partial = folder / f"model.npz.{os.getpid()}.tmp"  # several processes may cache one version at once
        shutil.copyfile(found[0], partial)
        os.replace(partial, target)
        return Reference(
            model,
            version,
            "aidevops",
            rows=rows,
            expected=expected.tolist(),
            task=served.task,
            origin=f"{len(rows)} reference rows from the model's {origin}",
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _download(uri: str, folder: Path) -> Path:
    """MLflow's download without its progress bar (this runs inside CLI commands and notebooks)."""
    import mlflow.artifacts  # noqa: PLC0415

    key = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    saved = os.environ.get(key)
    os.environ[key] = "false"
    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(folder)))
    finally:
        if saved is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = saved


def check_predictions(ref: Reference, outputs: list[dict]) -> str | None:
    """None when the served `predict` output equals the registry model's predictions; else what differs."""
    import numpy as np  # noqa: PLC0415

    if ref.expected is None:
        return None
    out = next((o for o in outputs if isinstance(o, dict) and o.get("name") == "predict"), None)
    if out is None:
        return "the server returned no 'predict' output"
    got = np.asarray(out.get("data"))
    want = np.asarray(ref.expected)
    if got.size != want.size:
        return f"the server returned {got.size} predictions for {want.size} reference rows"
    got, want = got.reshape(-1), want.reshape(-1)
    if want.dtype.kind in "fc" or got.dtype.kind in "fc":
        try:
            differs = ~np.isclose(got.astype(np.float64), want.astype(np.float64), rtol=1e-5, atol=1e-6)
        except (TypeError, ValueError):
            differs = np.ones(got.shape, dtype=bool)
    else:
        differs = got.astype(str) != want.astype(str)
    if differs.any():
        row = int(np.flatnonzero(differs)[0])
        return (
            f"its predictions differ from the registry model's on reference row {row} "
            f"(served {got[row].item()!r}, registry {want[row].item()!r})"
        )
    return None
