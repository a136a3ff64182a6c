"""Kubernetes manifests, validated against Kubernetes' own schemas (kubernetes-validate bundles them: offline).

Deployment, Service and HorizontalPodAutoscaler are validated whole, strictly (no unknown fields), for
several Kubernetes versions. The KServe InferenceService is a custom resource kubernetes-validate has no
schema for: it is validated against a schema written here from KServe's v1beta1 API (InferenceService →
spec.predictor = a PodSpec plus KServe's component fields), whose pod parts (metadata, containers,
volumes) are Kubernetes' own strict definitions from the same bundle.

A cluster cannot run here, so `kubectl` is a stand-in script on PATH that records what it is given.
"""

from __future__ import annotations

import copy
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

kubernetes_validate = pytest.importorskip("kubernetes_validate")

from aidevops_ext.deploy import manager  # noqa: E402
from aidevops_ext.deploy.kubernetes import k8s_name, render_manifests  # noqa: E402
from tests.deploy.test_cli import one_sentence_error, run  # noqa: E402

K8S_VERSIONS = ["1.29", "1.33"]
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")


def _definitions(version: str) -> dict:
    from kubernetes_validate import utils

    full = next(v for v in utils.all_versions() if utils.major_minor(v) == version)
    return utils.schema_contents(f"kubernetes-json-schema/v{full}-local-strict/_definitions.json", version)


def inference_service_schema(defs: dict) -> dict:
    """InferenceService (serving.kserve.io/v1beta1) with the predictor fields of KServe's API reference."""
    # PodSpec's own references are relative to the definitions document: point them there.
    pod = json.loads(
        json.dumps(defs["$defs"]["io.k8s.api.core.v1.PodSpec"]["properties"]).replace(
            '"#/$defs/', '"/api/_definitions.json#/$defs/'
        )
    )
    string_map = {"type": "object", "additionalProperties": {"type": "string"}}
    component = {  # KServe ComponentExtensionSpec
        "minReplicas": {"type": "integer", "minimum": 0},
        "maxReplicas": {"type": "integer", "minimum": 0},
        "scaleTarget": {"type": "integer", "minimum": 1},
        "scaleMetric": {"enum": ["cpu", "memory", "concurrency", "rps"]},
        "containerConcurrency": {"type": "integer", "minimum": 0},
        "timeout": {"type": "integer", "minimum": 0},
        "canaryTrafficPercent": {"type": "integer", "minimum": 0, "maximum": 100},
        "labels": string_map,
        "annotations": string_map,
        "logger": {"type": "object"},
        "batcher": {"type": "object"},
        "deploymentStrategy": {"type": "object"},
    }
    frameworks = {
        k: {"type": "object"}
        for k in (
            "model",
            "sklearn",
            "xgboost",
            "tensorflow",
            "pytorch",
            "triton",
            "onnx",
            "huggingface",
            "pmml",
            "lightgbm",
            "paddle",
        )
    }
    predictor = {"type": "object", "additionalProperties": False, "properties": {**pod, **component, **frameworks}}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://kubernetes.io/api/inferenceservice/serving.kserve.io/v1beta1",
        "type": "object",
        "additionalProperties": False,
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "serving.kserve.io/v1beta1"},
            "kind": {"const": "InferenceService"},
            "metadata": {"$ref": "/api/_definitions.json#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"},
            "spec": {
                "type": "object",
                "additionalProperties": False,
                "required": ["predictor"],
                "properties": {
                    "predictor": predictor,
                    "transformer": {"type": "object"},
                    "explainer": {"type": "object"},
                },
            },
        },
    }


def validate_inference_service(obj: dict, version: str) -> None:
    import jsonschema
    from referencing import Registry, Resource

    defs = _definitions(version)
    schema = inference_service_schema(defs)
    registry = Resource.from_contents(defs) @ Registry()
    jsonschema.Draft202012Validator(schema, registry=registry).validate(obj)


def validate(obj: dict, version: str) -> None:
    if obj["kind"] == "InferenceService":
        validate_inference_service(obj, version)
    else:
        kubernetes_validate.validate(obj, version, strict=True)


@pytest.fixture(scope="module")
def objects():
    return render_manifests(
        "digits-classifier@champion",
        image="registry.local/aidevops:1.2",
        tracking_uri="http://mlflow.ml.svc:5000",
        max_replicas=4,
    )


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_object_is_valid_for_kubernetes(objects, version):
    assert [o["kind"] for o in objects] == [
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "InferenceService",
        "Secret",
    ]
    for obj in objects:
        validate(obj, version)
        assert DNS_1035.match(obj["metadata"]["name"])


def test_the_validation_catches_mistakes(objects):
    import jsonschema

    bad = copy.deepcopy(objects)
    bad[0]["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "eighty"
    bad[1]["spec"]["prots"] = []
    bad[2]["spec"]["minReplicas"] = "one"
    bad[3]["spec"]["predictor"]["containers"][0]["imagePullPolicy"] = 3
    for obj in bad[:3]:
        with pytest.raises(kubernetes_validate.ValidationError):
            validate(obj, "1.33")
    with pytest.raises(jsonschema.ValidationError):
        validate(bad[3], "1.33")
    typo = copy.deepcopy(objects[3])
    typo["spec"]["predictor"]["minReplica"] = 1
    with pytest.raises(jsonschema.ValidationError):
        validate(typo, "1.33")


def test_what_the_manifests_say(objects):
    deployment, service, hpa, isvc, secret = objects
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert container["image"] == "registry.local/aidevops:1.2"
    assert container["command"][:6] == [
        "aidevops",
        "serve",
        "models:/digits-classifier@champion",
        "--host",
        "0.0.0.0",
        "--port",
    ]
    assert container["command"][6] == "8080"
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": 8080}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": 8080}
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow.ml.svc:5000"
    # the feedback token comes from the Secret, never the command line or a plain value
    assert env["AIDEVOPS_FEEDBACK_TOKEN"] == {"secretKeyRef": {"name": "digits-classifier-feedback", "key": "token"}}
    assert secret["metadata"]["name"] == "digits-classifier-feedback" and len(secret["stringData"]["token"]) >= 32
    assert secret["stringData"]["token"] not in str(deployment) + str(isvc)
    # the Host names answered: the Service's names in the pod's namespace, and the pod's IP (probes, scrapes)
    names = [e["name"] for e in container["env"]]
    hosts = env["AIDEVOPS_ALLOWED_HOSTS"].split(",")
    assert names.index("AIDEVOPS_POD_IP") < names.index("AIDEVOPS_ALLOWED_HOSTS")  # $(VAR) expands earlier ones
    assert names.index("AIDEVOPS_POD_NAMESPACE") < names.index("AIDEVOPS_ALLOWED_HOSTS")
    assert env["AIDEVOPS_POD_IP"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert {
        "digits-classifier",
        "digits-classifier.$(AIDEVOPS_POD_NAMESPACE).svc.cluster.local",
        "digits-classifier-predictor.$(AIDEVOPS_POD_NAMESPACE).svc",
        "$(AIDEVOPS_POD_IP)",
    } <= set(hosts)
    assert pod["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "8080",
        "prometheus.io/path": "/metrics",
    }
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert (
        service["spec"]["ports"][0]["targetPort"] == "http"
        and service["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    )
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "digits-classifier"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 4)
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    kc = isvc["spec"]["predictor"]["containers"][0]
    assert kc["name"] == "kserve-container" and kc["command"] == container["command"]
    assert {"name": "PROTOCOL", "value": "v2"} in kc["env"]
    assert [e for e in kc["env"] if e["name"] != "PROTOCOL"] == container["env"]
    assert isvc["metadata"]["annotations"]["serving.kserve.io/enable-prometheus-scraping"] == "true"


def test_names_and_inputs_are_checked():
    assert k8s_name("Digits_Classifier.v2") == "digits-classifier-v2"
    assert k8s_name("9lives") == "lives"
    from aidevops_ext.errors import ConfigError

    with pytest.raises(ConfigError, match="not a valid Kubernetes namespace"):
        render_manifests("m@champion", namespace="Bad_NS")
    with pytest.raises(ConfigError, match="not a container image"):
        render_manifests("m@champion", image="img; rm -rf /")
    with pytest.raises(ConfigError, match="below min replicas"):
        render_manifests("m@champion", min_replicas=3, max_replicas=2)


def test_dry_run_prints_and_writes_the_manifests(reg, tmp_path):
    out = run(reg, "deploy", "dig@champion", "--target", "kubernetes", "--dry-run", "--image", "aidevops:test")
    assert out.returncode == 0, out.stderr
    docs = list(yaml.safe_load_all(out.stdout))
    assert [d["kind"] for d in docs] == [
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "InferenceService",
        "Secret",
    ]
    assert docs[4]["stringData"]["token"] == run(reg, "token", "dig").stdout.strip()  # what `aidevops token` prints
    assert "&id" not in out.stdout, "no YAML anchors"
    assert "MLflow store" in out.stderr and "--tracking-uri" in out.stderr  # the local store warning
    for doc in docs:
        validate(doc, "1.33")
    folder = tmp_path / "manifests"
    out = run(
        reg,
        "deploy",
        "dig@champion",
        "--target",
        "kubernetes",
        "--dry-run",
        "-o",
        str(folder),
        "--tracking-uri",
        "http://mlflow:5000",
    )
    assert out.returncode == 0 and out.stderr == ""
    files = sorted(f.relative_to(folder).as_posix() for f in folder.rglob("*.yaml"))
    assert {f for f in files if not f.startswith("overlays/")} == {
        "base/kustomization.yaml",
        "base/secret.yaml",
        "base/deployment.yaml",
        "base/service.yaml",
        "base/horizontalpodautoscaler.yaml",
        "kserve/kustomization.yaml",
        "kserve/secret.yaml",
        "kserve/inferenceservice.yaml",
    }  # the kustomize tree: tests/beyond/test_kustomize.py
    assert {f.split("/")[1] for f in files if f.startswith("overlays/")} == {
        "dev",
        "staging",
        "prod",
        "dev-kserve",
        "staging-kserve",
        "prod-kserve",
    }
    assert sorted(Path(p).relative_to(folder).as_posix() for p in out.stdout.split()) == files
    renders = [h for h in manager.history(reg.ws) if h.operation == "render" and h.deployment == "dig"]
    assert len(renders) >= 2


def _fake_kubectl(folder: Path, context: bool) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "kubectl"
    script.write_text(
        "#!/bin/sh\n"
        'if [ "$1 $2" = "config current-context" ]; then\n'
        + ("  echo kind-test; exit 0\n" if context else '  echo "error: current-context is not set" >&2; exit 1\n')
        + "fi\n"
        'cat > "$FAKE_KUBECTL_DIR/$1.yaml"\n'
        'echo "$1: ok"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return folder


def test_apply_with_kubectl_and_undeploy(reg, tmp_path, monkeypatch):
    bin_dir = _fake_kubectl(tmp_path / "bin", context=True)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_KUBECTL_DIR", str(tmp_path))
    out = run(
        reg,
        "deploy",
        "dig@champion",
        "--name",
        "k8s-dig",
        "--target",
        "kubernetes",
        "--tracking-uri",
        "http://mlflow:5000",
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "apply: ok"
    applied = list(yaml.safe_load_all((tmp_path / "apply.yaml").read_text()))
    assert [d["kind"] for d in applied] == ["Secret", "Deployment", "Service", "HorizontalPodAutoscaler"]
    token = run(reg, "token", "k8s-dig").stdout.strip()
    assert applied[0]["stringData"] == {"token": token}
    dep = manager.get(reg.ws, "k8s-dig")
    assert (dep.target, dep.state, dep.ref) == ("kubernetes", "applied", "dig@champion")
    assert json.loads(dep.options)["context"] == "kind-test"
    assert token not in json.dumps(dep.to_dict()), "deploy.db rows the API returns never hold the token"
    out = run(reg, "undeploy", "k8s-dig")
    assert out.returncode == 0, out.stderr
    deleted = list(yaml.safe_load_all((tmp_path / "delete.yaml").read_text()))
    assert [d["kind"] for d in deleted] == ["Secret", "Deployment", "Service", "HorizontalPodAutoscaler"]
    assert manager.get(reg.ws, "k8s-dig").state == "stopped"
    out = run(
        reg,
        "deploy",
        "dig@champion",
        "--name",
        "k8s-isvc",
        "--target",
        "kubernetes",
        "--kserve",
        "--tracking-uri",
        "http://mlflow:5000",
    )
    assert out.returncode == 0, out.stderr
    kinds = [d["kind"] for d in yaml.safe_load_all((tmp_path / "apply.yaml").read_text())]
    assert kinds == ["Secret", "InferenceService"]
    ops = [(h.deployment, h.operation) for h in manager.history(reg.ws) if h.deployment.startswith("k8s-")]
    assert ops == [("k8s-dig", "deploy"), ("k8s-dig", "undeploy"), ("k8s-isvc", "deploy")]


def test_apply_without_a_cluster_is_one_sentence(reg, tmp_path, monkeypatch):
    bin_dir = _fake_kubectl(tmp_path / "bin", context=False)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    one_sentence_error(
        run(reg, "deploy", "dig@champion", "--target", "kubernetes"), "kubectl has no current context", "--dry-run"
    )
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    one_sentence_error(
        run(reg, "deploy", "dig@champion", "--target", "kubernetes"), "kubectl is not installed", "--dry-run"
    )
    assert not any(d.target == "kubernetes" and d.name == "dig" for d in manager.list_deployments(reg.ws))


def test_kubernetes_validate_works_offline():
    """The schemas ship inside the package: validation reads no network (CI machines have none)."""
    import kubernetes_validate.utils as utils

    files = list(Path(utils.__file__).parent.glob("kubernetes-json-schema/v1.33*-local-strict/deployment-apps-v1.json"))
    assert files, "kubernetes-validate's bundled schemas are missing"
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import socket\n"
            "def no(*a, **k): raise OSError('network disabled')\n"
            "socket.socket.connect = no; socket.create_connection = no\n"
            "import kubernetes_validate\n"
            "kubernetes_validate.validate({'apiVersion': 'v1', 'kind': 'Service', 'metadata': {'name': 's'}, "
            "'spec': {'ports': [{'port': 80}]}}, '1.33', strict=True); print('ok')",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
