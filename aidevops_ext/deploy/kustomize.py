"""The Kubernetes manifests as a kustomize tree: a base plus one overlay per environment.

```
DIR/base/                     Secret, Deployment, Service, HorizontalPodAutoscaler   (kubectl apply -k DIR/base)
DIR/kserve/                   Secret and the KServe InferenceService (same image, OIP v2) instead of the others
DIR/overlays/<env>/           base + the environment's namespace, image and scale  (kubectl apply -k ...)
DIR/overlays/<env>-kserve/    kserve + the same for KServe clusters
```

Environments (dev, staging, prod) differ in namespace (`<namespace>-<env>`, or `aidevops-<env>` when the
namespace was left at `default`) and scale: dev runs one replica (autoscaling to at most two), staging
what was asked, prod at least two (a node drain never takes the model down). Each overlay names the
image in `images:`, so `kustomize edit set image` pins a release per environment.

The kustomization files use only fields that Debian's kubectl (1.20, kustomize v2.0.3, what the tests
run) and current kubectl both read: `bases` and `patchesStrategicMerge`. Current kubectl renders them
the same and notes that they are deprecated (`kustomize edit fix` rewrites them to `resources`/`patches`).

`secret.yaml` holds the deployment's feedback token (kubernetes.py); it is written readable by its owner only.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..errors import ConfigError

ENVIRONMENTS = ("dev", "staging", "prod")
KUSTOMIZE_API = "kustomize.config.k8s.io/v1beta1"


def _dump(obj: Any) -> str:
    import yaml  # noqa: PLC0415

    from .kubernetes import _dumper

    return yaml.dump(obj, Dumper=_dumper(), sort_keys=False)


def _file(obj: dict[str, Any]) -> str:
    return f"{obj['kind'].lower()}.yaml"


def environment_namespace(namespace: str, env: str) -> str:
    """Namespace of an environment's overlay."""
    return f"aidevops-{env}" if namespace == "default" else f"{namespace}-{env}"[:63].rstrip("-")


def environment_scale(env: str, replicas: int, min_replicas: int, max_replicas: int) -> tuple[int, int, int]:
    """(replicas, min, max) of an environment."""
    if env == "dev":
        return 1, 1, max(1, min(2, max_replicas))
    if env == "prod":
        low = max(2, min_replicas)
        return max(replicas, low), low, max(max_replicas, low)
    return replicas, min_replicas, max_replicas


def _image_entry(image: str) -> dict[str, str]:
    """kustomize's `images:` entry for a reference (name plus newTag or digest)."""
    name, _, digest = image.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
    else:
        tag = ""
    entry = {"name": name}
    if digest:
        entry["digest"] = digest
    elif tag:
        entry["newTag"] = tag
    return entry


def kustomize_tree(
    objects: list[dict[str, Any]], namespace: str, environments: tuple[str, ...] = ENVIRONMENTS
) -> dict[str, str]:
    """Relative path -> file text for the whole tree (from `render_manifests`' objects)."""
    by_kind = {o["kind"]: o for o in objects}
    missing = {"Deployment", "Service", "HorizontalPodAutoscaler", "InferenceService", "Secret"} - set(by_kind)
    if missing:
        raise ConfigError(f"the manifests lack {', '.join(sorted(missing))}; render them with render_manifests().")
    deployment, hpa, isvc = by_kind["Deployment"], by_kind["HorizontalPodAutoscaler"], by_kind["InferenceService"]
    name = deployment["metadata"]["name"]
    meta = {"name": name, "namespace": deployment["metadata"]["namespace"]}  # patches match the base's objects
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    files: dict[str, str] = {}
    secret = by_kind["Secret"]
    trio = [secret, by_kind["Deployment"], by_kind["Service"], hpa]
    for folder, members in (("base", trio), ("kserve", [secret, isvc])):
        for obj in members:
            files[f"{folder}/{_file(obj)}"] = _dump(obj)
        files[f"{folder}/kustomization.yaml"] = _dump(
            {"apiVersion": KUSTOMIZE_API, "kind": "Kustomization", "resources": [_file(o) for o in members]}
        )
    for env in environments:
        replicas, low, high = environment_scale(
            env, deployment["spec"]["replicas"], hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]
        )
        scale: list[dict[str, Any]] = [
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": {"replicas": replicas}},
            {
                "apiVersion": "autoscaling/v2",
                "kind": "HorizontalPodAutoscaler",
                "metadata": meta,
                "spec": {"minReplicas": low, "maxReplicas": high},
            },
        ]
        kserve_scale: list[dict[str, Any]] = [
            {
                "apiVersion": isvc["apiVersion"],
                "kind": "InferenceService",
                "metadata": meta,
                "spec": {"predictor": {"minReplicas": low, "maxReplicas": high}},
            }
        ]
        for folder, base, patches in ((env, "base", scale), (f"{env}-kserve", "kserve", kserve_scale)):
            prefix = f"overlays/{folder}"
            for patch in patches:
                files[f"{prefix}/scale-{patch['kind'].lower()}.yaml"] = _dump(patch)
            files[f"{prefix}/kustomization.yaml"] = _dump(
                {
                    "apiVersion": KUSTOMIZE_API,
                    "kind": "Kustomization",
                    "bases": [f"../../{base}"],
                    "namespace": environment_namespace(namespace, env),
                    "commonAnnotations": {"aidevops.io/environment": env},
                    "images": [_image_entry(image)],
                    "patchesStrategicMerge": [f"scale-{p['kind'].lower()}.yaml" for p in patches],
                }
            )
    return files


def write_tree(files: dict[str, str], folder: Path) -> list[Path]:
    """Write the tree into `folder` whole: built beside it, then swapped in (its other files stay)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder, prefix=".kustomize-"))
    try:
        for rel, text in files.items():
            path = staging / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            if path.name == "secret.yaml":  # the feedback token
                path.chmod(0o600)
        for top in sorted({rel.split("/", 1)[0] for rel in files}):
            target = folder / top
            if target.exists():
                shutil.rmtree(target)
            os.replace(staging / top, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [folder / rel for rel in files]
