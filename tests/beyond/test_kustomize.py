"""`aidevops deploy --target kubernetes --dry-run -o DIR`: a kustomize base plus an overlay per environment.

Every folder is rendered by the real `kubectl kustomize` (Debian's kubectl, installed by .ci/run) and every
object it renders is validated against Kubernetes' schemas (the InferenceService against KServe's API as
written in tests/deploy/test_kubernetes.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from aidevops_ext.deploy.kubernetes import render_manifests
from aidevops_ext.deploy.kustomize import _image_entry
from aidevops_ext.tokens import feedback_token
from aidevops_ext.workspace import Workspace
from tests.conftest import REPO
from tests.deploy.test_kubernetes import validate
from tests.support.cli import run_cli

IMAGE = "registry.local/aidevops:1.2"
OVERLAYS = ["dev", "staging", "prod", "dev-kserve", "staging-kserve", "prod-kserve"]


def kubectl() -> str:
    found = shutil.which("kubectl")
    assert found, "kubectl is missing: .ci/run installs Debian's (apt package kubernetes-client)"
    return found


def kustomize(folder: Path) -> list[dict]:
    out = subprocess.run([kubectl(), "kustomize", str(folder)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def deploy_dry_run(root: Path, *args: str) -> subprocess.CompletedProcess:
    settings = {"AIDEVOPS_HOME": str(root), "AIDEVOPS_ACTOR": "kustomize-tests"}
    return run_cli(
        "deploy", "dig@champion", "--target", "kubernetes", "--dry-run", *args, cwd=root, env=settings, timeout=120
    )


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("k8s-ws")
    folder = root / "manifests"
    out = deploy_dry_run(
        root,
        "-o",
        str(folder),
        "--image",
        IMAGE,
        "--tracking-uri",
        "http://mlflow.ml.svc:5000",
        "--namespace",
        "ml",
        "--replicas",
        "3",
        "--min-replicas",
        "3",
        "--max-replicas",
        "6",
    )
    assert out.returncode == 0, out.stderr
    return folder


@pytest.fixture(scope="module")
def rendered(tree) -> dict[str, list[dict]]:
    folders = {"base": tree / "base", "kserve": tree / "kserve"}
    folders.update({name: tree / "overlays" / name for name in OVERLAYS})
    return {name: kustomize(folder) for name, folder in folders.items()}


def by_kind(objects: list[dict]) -> dict[str, dict]:
    return {o["kind"]: o for o in objects}


def test_the_tree_has_a_base_and_an_overlay_per_environment(tree):
    assert sorted(p.name for p in (tree / "overlays").iterdir()) == sorted(OVERLAYS)
    for folder in [tree / "base", tree / "kserve", *(tree / "overlays").iterdir()]:
        assert (folder / "kustomization.yaml").is_file(), folder


@pytest.mark.parametrize("version", ["1.29", "1.33"])
def test_every_rendered_object_is_valid(rendered, version):
    for name, objects in rendered.items():
        assert objects, name
        for obj in objects:
            validate(obj, version)


def test_the_base_is_exactly_the_rendered_manifests(rendered, tree):
    token = feedback_token(Workspace(tree.parent), "dig")
    assert token and (tree / "base" / "secret.yaml").stat().st_mode & 0o777 == 0o600
    expected = render_manifests(
        "dig@champion",
        name="dig",
        image=IMAGE,
        tracking_uri="http://mlflow.ml.svc:5000",
        namespace="ml",
        replicas=3,
        min_replicas=3,
        max_replicas=6,
        feedback_token=token,
    )
    assert len(rendered["base"]) == 4 and by_kind(rendered["base"]) == by_kind([*expected[:3], expected[4]])
    assert len(rendered["kserve"]) == 2 and by_kind(rendered["kserve"]) == by_kind([expected[3], expected[4]])


@pytest.mark.parametrize(
    "env, namespace, scale",
    [
        ("dev", "ml-dev", (1, 1, 2)),
        ("staging", "ml-staging", (3, 3, 6)),
        ("prod", "ml-prod", (3, 3, 6)),
    ],
)
def test_what_each_environment_says(rendered, env, namespace, scale):
    objects = by_kind(rendered[env])
    assert set(objects) == {"Deployment", "Service", "HorizontalPodAutoscaler", "Secret"}
    deployment, hpa = objects["Deployment"], objects["HorizontalPodAutoscaler"]
    assert {o["metadata"]["namespace"] for o in objects.values()} == {namespace}
    assert {o["metadata"]["annotations"]["aidevops.io/environment"] for o in objects.values()} == {env}
    assert (deployment["spec"]["replicas"], hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == scale
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == IMAGE
    assert container["command"][:3] == ["aidevops", "serve", "models:/dig@champion"]
    # The patches change scale only: probes, security context and environment come from the base.
    base = by_kind(rendered["base"])["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container == base
    kserve = by_kind(rendered[f"{env}-kserve"])
    assert set(kserve) == {"InferenceService", "Secret"}
    assert kserve["Secret"]["metadata"]["namespace"] == namespace  # beside the pods that read it
    predictor = kserve["InferenceService"]["spec"]["predictor"]
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == scale[1:]
    assert kserve["InferenceService"]["metadata"]["namespace"] == namespace
    (isvc_container,) = predictor["containers"]
    assert isvc_container["image"] == IMAGE and {"name": "PROTOCOL", "value": "v2"} in isvc_container["env"]


def test_prod_keeps_two_replicas_however_few_were_asked(tmp_path):
    folder = tmp_path / "m"
    out = deploy_dry_run(tmp_path, "-o", str(folder), "--image", IMAGE, "--tracking-uri", "http://mlflow:5000")
    assert out.returncode == 0, out.stderr
    prod = by_kind(kustomize(folder / "overlays" / "prod"))
    assert prod["Deployment"]["spec"]["replicas"] == 2 and prod["HorizontalPodAutoscaler"]["spec"]["minReplicas"] == 2
    assert prod["Deployment"]["metadata"]["namespace"] == "aidevops-prod"  # --namespace left at default


def test_writing_again_replaces_the_tree_and_keeps_other_files(tmp_path):
    folder = tmp_path / "m"
    assert deploy_dry_run(tmp_path, "-o", str(folder), "--image", IMAGE).returncode == 0
    (folder / "README.md").write_text("notes of the team")
    out = deploy_dry_run(tmp_path, "-o", str(folder), "--image", "registry.local/aidevops@sha256:" + "a" * 64)
    assert out.returncode == 0, out.stderr
    assert (folder / "README.md").read_text() == "notes of the team"
    assert not [p for p in folder.iterdir() if p.name.startswith(".")], "no staging folder left"
    staging = by_kind(kustomize(folder / "overlays" / "staging"))
    image = staging["Deployment"]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "registry.local/aidevops@sha256:" + "a" * 64


@pytest.mark.parametrize(
    "image, entry",
    [
        ("aidevops:latest", {"name": "aidevops", "newTag": "latest"}),
        ("registry.local:5000/team/aidevops:1.2", {"name": "registry.local:5000/team/aidevops", "newTag": "1.2"}),
        ("registry.local:5000/aidevops", {"name": "registry.local:5000/aidevops"}),
        ("aidevops@sha256:abc", {"name": "aidevops", "digest": "sha256:abc"}),
    ],
)
def test_image_entries(image, entry):
    assert _image_entry(image) == entry


def test_a_bad_namespace_writes_nothing(tmp_path):
    folder = tmp_path / "m"
    out = deploy_dry_run(tmp_path, "-o", str(folder), "--namespace", "Bad_NS")
    assert out.returncode != 0 and "not a valid Kubernetes namespace" in out.stderr
    assert "Traceback" not in out.stderr and not folder.exists()


def test_kubectl_is_the_one_the_project_installs():
    """The test command installs Debian's kubectl when none is on PATH (the package is kubernetes-client)."""
    text = (REPO / "scripts" / "test").read_text()
    assert "command -v kubectl >/dev/null || missing+=(kubernetes-client)" in text
    assert text.index("kubernetes-client") < text.index("python -m pytest")


def _kubectl_standing_in_for_a_cluster(folder: Path) -> Path:
    """kubectl with a context: `kustomize` is the real one, `apply`/`delete` record what they are given."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "kubectl"
    script.write_text(
        "#!/bin/sh\n"
        'if [ "$1 $2" = "config current-context" ]; then echo kind-test; exit 0; fi\n'
        f'if [ "$1" = "kustomize" ]; then exec {kubectl()} "$@"; fi\n'
        'cat > "$FAKE_KUBECTL_DIR/$1.yaml"\n'
        'echo "$1: ok"\n'
    )
    script.chmod(0o755)
    return folder


def test_an_environment_overlay_is_what_gets_applied_and_deleted(tmp_path):
    real = kubectl()
    bin_dir = _kubectl_standing_in_for_a_cluster(tmp_path / "bin")
    env_path = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"

    settings = {
        "AIDEVOPS_HOME": str(tmp_path),
        "AIDEVOPS_ACTOR": "kustomize-tests",
        "PATH": env_path,
        "FAKE_KUBECTL_DIR": str(tmp_path),
    }

    def cli(*args: str) -> subprocess.CompletedProcess:
        return run_cli(*args, cwd=tmp_path, env=settings, timeout=120)

    assert real != str(bin_dir / "kubectl")
    out = cli(
        "deploy",
        "dig@champion",
        "--target",
        "kubernetes",
        "--dry-run",
        "--environment",
        "staging",
        "--tracking-uri",
        "http://mlflow:5000",
    )
    assert out.returncode == 0, out.stderr
    printed = by_kind([d for d in yaml.safe_load_all(out.stdout) if d])
    assert {o["metadata"]["namespace"] for o in printed.values()} == {"aidevops-staging"}
    out = cli(
        "deploy",
        "dig@champion",
        "--name",
        "k8s-prod",
        "--target",
        "kubernetes",
        "--environment",
        "prod",
        "--kserve",
        "--tracking-uri",
        "http://mlflow:5000",
        "--image",
        IMAGE,
    )
    assert out.returncode == 0, out.stderr
    applied = by_kind([d for d in yaml.safe_load_all((tmp_path / "apply.yaml").read_text()) if d])
    assert set(applied) == {"InferenceService", "Secret"}  # the feedback token's Secret beside the pods
    assert applied["Secret"]["metadata"]["namespace"] == "aidevops-prod"
    isvc = applied["InferenceService"]
    assert isvc["metadata"]["namespace"] == "aidevops-prod" and isvc["spec"]["predictor"]["minReplicas"] == 2
    assert (
        tmp_path / ".aidevops" / "kubernetes" / "k8s-prod" / "overlays" / "prod-kserve" / "kustomization.yaml"
    ).is_file()
    out = cli("undeploy", "k8s-prod")
    assert out.returncode == 0, out.stderr
    deleted = by_kind([d for d in yaml.safe_load_all((tmp_path / "delete.yaml").read_text()) if d])
    assert deleted["InferenceService"]["metadata"]["namespace"] == "aidevops-prod", "undeploy deletes what was applied"
    assert deleted["Secret"]["metadata"]["name"] == "k8s-prod-feedback" and "stringData" not in deleted["Secret"]
