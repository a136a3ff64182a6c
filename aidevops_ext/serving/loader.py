"""From a model URI to a ServedModel: registry aliases and versions, MLflow model folders, `.npz` files.

- `models:/NAME@ALIAS` and `models:/NAME/VERSION` resolve through the workspace's registry;
- a local `.npz` is one of our model files (loaded without pickle, no MLflow import);
- a local folder holding `MLmodel`, or any other MLflow artifact URI (`runs:/...`), is downloaded.
  (The admin API takes registry URIs only: serving/admin.py.)

Loading only what does not run the model's own code: a pyfunc whose loader is ours is read as `.npz`
(no pickle), and a scikit-learn model saved in skops format whose trusted types are all numpy, scipy or
scikit-learn types is read by skops. Every other pyfunc unpickles (cloudpickle'd python models, sklearn
pickles, torch) or runs code shipped with the model, so it is loaded only with `allow_pickle=True`: the
`--allow-pickle` flag of `aidevops serve`/`deploy`, or `serving: {allow_pickle: true}` in the pipeline spec
that trains the model. Without it the version is refused with one sentence naming both.

A pyfunc whose loader is `aidevops_ext.pyfunc_model` is unwrapped to its `.npz` and takes the fast
path (its profile is embedded in the file); any other pyfunc goes through `mlflow.pyfunc.load_model`,
and its reference profile (monitoring/frameprofile.py) is found, first match wins: the artifact named
by the model-version tag `aidevops.reference_profile` (registry URIs), then `reference_profile.json`
inside the model folder or beside it. A profile that cannot be read is logged and the model is served
without one (no feature drift), never refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import AidevopsError, ConfigError
from ..workspace import Workspace
from .errors import ModelRefused
from .models import AidevopsModel, PyfuncModel, ServedModel

log = logging.getLogger("aidevops.serving")

LOADER_MODULE = "aidevops_ext.pyfunc_model"
PROFILE_TAG = "aidevops.reference_profile"  # model-version tag: the URI of the version's reference profile
PROFILE_FILE = "reference_profile.json"
SKLEARN_LOADER = "mlflow.sklearn"
# skops builds only the types it is told to trust; these packages' types build estimators and arrays, never a shell.
SKOPS_SAFE_PREFIXES = ("numpy.", "scipy.", "sklearn.")
PICKLE_OPT_IN = (
    "pass --allow-pickle to `aidevops serve`/`aidevops deploy` or set `serving: {allow_pickle: true}` "
    "in the pipeline spec that trains it"
)
_REGISTRY_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>[^/@]+))$")


@dataclass(frozen=True)
class ModelRef:
    """A parsed model URI: registry name with alias or version, or a local path / other MLflow URI."""

    uri: str
    name: str | None = None
    alias: str | None = None
    version: str | None = None

    @property
    def is_registry(self) -> bool:
        """Whether the URI names a registered model (`models:/NAME@ALIAS` or `models:/NAME/VERSION`)."""
        return self.name is not None

    @property
    def registered_name(self) -> str:
        """The registered model's name; only a registry reference (`is_registry`) has one."""
        if self.name is None:
            raise ConfigError(f"{self.uri} names no registered model; use models:/NAME@ALIAS or models:/NAME/VERSION.")
        return self.name

    def pinned(self, version: str) -> str:
        """The `models:/NAME/VERSION` URI of one version of this model."""
        return f"models:/{self.name}/{version}"


def parse_uri(uri: str) -> ModelRef:
    """Split a model URI into its parts; anything not `models:/...` is returned as is."""
    if not isinstance(uri, str) or not uri.strip():
        raise ConfigError("The model URI is empty; pass models:/NAME@ALIAS, models:/NAME/VERSION or a model file path.")
    uri = uri.strip()
    if uri.startswith("models:/"):
        m = _REGISTRY_URI.match(uri)
        if not m or (m["version"] and m["version"] != "latest" and not m["version"].isdigit()):
            raise ConfigError(f"Model URI {uri!r} is malformed; use models:/NAME@ALIAS or models:/NAME/VERSION.")
        return ModelRef(uri, name=m["name"], alias=m["alias"], version=m["version"])
    return ModelRef(uri)


def resolve_version(ref: ModelRef, ws: Workspace) -> str:
    """The version a registry reference points at now (an alias is looked up, `latest` is the highest)."""
    from .. import registry  # noqa: PLC0415 - MLflow only for registry URIs

    if ref.alias:
        version = registry.alias_version(ws, ref.registered_name, ref.alias)
        if version is None:
            raise ModelRefused(
                f"{ref.uri} does not exist in {ws.registry_uri} (no such registered model or alias); "
                "register a version and set the alias first."
            )
        return version
    if ref.version == "latest":
        versions = [int(v["version"]) for m in registry.list_models(ws, ref.name) for v in m["versions"]]
        if not versions:
            raise ModelRefused(f"Registered model {ref.name!r} has no versions; register one first.")
        return str(max(versions))
    return str(ref.version)


def load_model_uri(
    uri: str, workspace: Workspace | None = None, *, alias: str | None = None, allow_pickle: bool = False
) -> ServedModel:
    """Load the model behind `uri` (not smoke-tested: see slots.prepare); raises ModelRefused on failure.

    `allow_pickle`: also load pyfuncs whose loading unpickles or runs the model's code (see the module doc)."""
    ref = parse_uri(uri)
    ws = workspace or Workspace.discover()
    try:
        if ref.is_registry:
            version = resolve_version(ref, ws)
            return _load_registry(ref, version, ws, alias=ref.alias or alias, allow_pickle=allow_pickle)
        path = Path(ref.uri).expanduser()
        if path.is_file():
            return _load_file(path, alias=alias)
        if path.is_dir():
            if not (path / "MLmodel").is_file():
                raise ModelRefused(f"{path} holds no MLmodel file; pass an MLflow model folder or a .npz model file.")
            return _load_mlflow_dir(
                path,
                name=path.resolve().name,
                version=_digest(path / "MLmodel"),
                source=str(path),
                alias=alias,
                keep=None,
                allow_pickle=allow_pickle,
            )
        if "://" not in ref.uri and ":/" not in ref.uri:
            raise ModelRefused(
                f"{ref.uri} does not exist; pass models:/NAME@ALIAS, models:/NAME/VERSION or a model file path."
            )
        return _load_downloaded(
            ref.uri,
            ws,
            name=ref.uri.rstrip("/").rsplit("/", 1)[-1] or "model",
            version=hashlib.sha256(ref.uri.encode()).hexdigest()[:12],
            alias=alias,
            allow_pickle=allow_pickle,
        )
    except ModelRefused:
        raise
    except AidevopsError as exc:
        raise ModelRefused(f"Cannot load {uri}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - MLflow and foreign loaders raise anything; the slot stays as it was
        raise ModelRefused(f"Cannot load {uri}: {type(exc).__name__}: {str(exc)[:300]}") from None


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:12]


def _load_file(path: Path, *, alias: str | None) -> ServedModel:
    from ..trainer import load_model  # noqa: PLC0415

    if path.suffix != ".npz":
        raise ModelRefused(f"{path} is not a .npz model file; pass an aidevops model file or an MLflow model folder.")
    estimator = load_model(path)
    meta = getattr(estimator, "metadata_", None) or {}
    meta_name = meta.get("name")
    name = meta_name if isinstance(meta_name, str) else path.stem
    return AidevopsModel.from_estimator(estimator, name=name, version=_digest(path), source=str(path), alias=alias)


def _load_registry(
    ref: ModelRef, version: str, ws: Workspace, *, alias: str | None, allow_pickle: bool = False
) -> ServedModel:
    from .. import registry  # noqa: PLC0415

    registry.configure(ws)
    model = _load_downloaded(
        ref.pinned(version), ws, name=ref.registered_name, version=version, alias=alias, allow_pickle=allow_pickle
    )
    if isinstance(model, PyfuncModel):
        tagged = tagged_profile(ws, ref.registered_name, version)
        if tagged is not None:
            attach_profile(model, tagged)
    return model


def tagged_profile(ws: Workspace, name: str, version: str) -> dict | None:
    """The profile the version's `aidevops.reference_profile` tag names, or None (no tag, or unreadable)."""
    import mlflow.artifacts  # noqa: PLC0415

    from .. import registry  # noqa: PLC0415

    try:
        uri = (registry.connection.client(ws).get_model_version(name, version).tags or {}).get(PROFILE_TAG)
        if not uri:
            return None
        with tempfile.TemporaryDirectory(prefix="aidevops-profile-") as tmp:
            path = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp))
            if path.is_dir():
                path = path / PROFILE_FILE
            return json.loads(path.read_text())
    except Exception as exc:  # noqa: BLE001 - monitoring is optional: serve without drift rather than refuse
        log.warning(
            "models:/%s/%s: reference profile not read (%s: %s); no feature drift.",
            name,
            version,
            type(exc).__name__,
            str(exc)[:200],
        )
        return None


def _file_profile(local: Path) -> dict | None:
    """`reference_profile.json` inside the model folder, else beside it; None when neither is there or readable."""
    for path in (local / PROFILE_FILE, local.parent / PROFILE_FILE):
        if path.is_file():
            try:
                return json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                log.warning("%s is not a readable profile (%s); no feature drift.", path, exc)
    return None


def attach_profile(model: ServedModel, profile: Any) -> None:
    """Give a model its reference profile (checked); a classification/regression profile also tells its task."""
    from ..monitoring.profile import profile_from_dict  # noqa: PLC0415

    try:
        model.profile = profile_from_dict(profile)
    except AidevopsError as exc:
        log.warning("%s: %s No feature drift.", model.label, exc)
        return
    task = (model.profile.get("predictions") or {}).get("task")
    if task in ("classification", "regression"):
        model.task = task  # what the profile saw the model predict beats the guess from its output signature


def _load_downloaded(
    uri: str, ws: Workspace, *, name: str, version: str, alias: str | None, allow_pickle: bool = False
) -> ServedModel:
    import mlflow.artifacts  # noqa: PLC0415

    from .. import registry  # noqa: PLC0415

    registry.configure(ws)
    folder = Path(tempfile.mkdtemp(prefix="aidevops-serve-"))
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(folder)))
        model = _load_mlflow_dir(
            local, name=name, version=version, source=uri, alias=alias, keep=folder, allow_pickle=allow_pickle
        )
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return model


def _load_mlflow_dir(
    local: Path,
    *,
    name: str,
    version: str,
    source: str,
    alias: str | None,
    keep: Path | None,
    allow_pickle: bool = False,
) -> ServedModel:
    """Our loader module -> the .npz fast path; any other pyfunc -> MLflow's loader (if it runs no model code,
    or `allow_pickle`)."""
    from mlflow.models import Model  # noqa: PLC0415

    flavors = Model.load(str(local)).flavors
    flavor = flavors.get("python_function")
    if flavor is None:
        raise ModelRefused(f"{source} has no python_function flavor; only MLflow pyfunc models can be served.")
    if flavor.get("loader_module") == LOADER_MODULE and "data" in flavor:
        data = local / flavor["data"]
        found = [data] if data.is_file() else sorted(data.glob("*.npz"))
        if len(found) != 1:
            raise ModelRefused(f"{source} holds no single .npz model file; re-log it with registry.log_model.")
        from ..trainer import load_model  # noqa: PLC0415

        estimator = load_model(found[0])
        if keep is not None:
            shutil.rmtree(keep, ignore_errors=True)  # everything is in memory now
        return AidevopsModel.from_estimator(estimator, name=name, version=version, source=source, alias=alias)
    unsafe = runs_model_code(flavors)
    if unsafe and not allow_pickle:
        raise ModelRefused(
            f"{source} was refused: {unsafe}, and loading it can run any code; if you trust it, {PICKLE_OPT_IN}."
        )
    import mlflow.pyfunc  # noqa: PLC0415

    pyfunc = mlflow.pyfunc.load_model(str(local))
    model = PyfuncModel.from_pyfunc(
        pyfunc, name=name, version=version, source=source, local_path=str(local), alias=alias
    )
    beside = _file_profile(local)
    if beside is not None:
        attach_profile(model, beside)
    if keep is not None:  # a pyfunc may read its artifacts lazily: the folder lives as long as the model
        weakref.finalize(model, shutil.rmtree, str(keep), True)
    return model


def runs_model_code(flavors: dict[str, Any]) -> str | None:
    """Why loading an MLflow model with these flavors (its MLmodel's) unpickles or runs code shipped with it;
    None for our loader and for scikit-learn in skops format trusting only numpy, scipy and scikit-learn types."""
    pyfunc = flavors.get("python_function") or {}
    loader = pyfunc.get("loader_module")
    if loader == LOADER_MODULE and "data" in pyfunc and not pyfunc.get("code"):
        return None
    if pyfunc.get("code") or pyfunc.get("model_code_path"):
        return "it ships its own Python code"
    if loader != SKLEARN_LOADER:
        if "python_model" in pyfunc or loader == "mlflow.pyfunc.model":
            return "it is a cloudpickled python model"
        return f"its pyfunc loader {str(loader)[:80]!r} unpickles it"
    sklearn = flavors.get("sklearn") or {}
    fmt = sklearn.get("serialization_format", "pickle")
    if fmt != "skops":
        return f"it is a scikit-learn model saved as {str(fmt)[:20]}"
    trusted = sklearn.get("skops_trusted_types") or []
    odd = [t for t in trusted if not (isinstance(t, str) and t.startswith(SKOPS_SAFE_PREFIXES))]
    if odd:
        return f"its skops file trusts {str(odd[0])[:80]!r}, a type outside numpy, scipy and scikit-learn"
    return None


def describe_uri(uri: str) -> dict[str, Any]:
    """The parts of a model URI, JSON-able (for the admin API)."""
    ref = parse_uri(uri)
    return {"uri": ref.uri, "name": ref.name, "alias": ref.alias, "version": ref.version}
