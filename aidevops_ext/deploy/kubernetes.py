"""The Kubernetes target: manifests for a served model, and `kubectl apply` when a cluster is configured.

`render_manifests` builds plain dicts for
- a Deployment running `aidevops serve models:/NAME@ALIAS --host 0.0.0.0 --port 8080` (readiness on
  /v2/health/ready, liveness on /health, MLFLOW_TRACKING_URI in the environment, Prometheus scrape
  annotations on the pods, a non-root read-only container with emptyDir scratch space);
- a ClusterIP Service in front of it (with the same scrape annotations, for Service-based discovery);
- an autoscaling/v2 HorizontalPodAutoscaler on CPU utilisation;
- a KServe InferenceService (serving.kserve.io/v1beta1) running the same container as a custom predictor
  speaking the Open Inference Protocol v2 (`PROTOCOL=v2`), scraped through KServe's Prometheus annotations;
- a Secret `<name>-feedback` holding the deployment's feedback token (aidevops_ext/tokens.py), which the
  container reads as AIDEVOPS_FEEDBACK_TOKEN: only its holders can POST /feedback labels.

The server answers only the Host names it is told about (serving/app.py): the Service's cluster names in
the pod's own namespace, the pod's IP (kubelet's probes and Prometheus' scrapes use it), and whatever
`--allowed-host` adds (an Ingress or KServe's external name), through AIDEVOPS_ALLOWED_HOSTS.

The InferenceService is the alternative for clusters with KServe: `--kserve` applies it instead of the
Deployment/Service/HPA trio (applying both would serve the model twice). `--dry-run` prints all four, or with
`--output DIR` writes them as a kustomize base plus an overlay per environment (kustomize.py). The printed
or written manifests hold the token in the Secret: keep them like the token itself.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..serving.config import parse_hosts
from ..tokens import ensure_feedback_token
from ..workspace import Workspace
from .local import DeploymentError
from .store import APPLIED, STOPPED, Deployment, DeployStore, default_actor
from .versions import parse_target

DEFAULT_IMAGE = "aidevops:latest"
CONTAINER_PORT = 8080
SERVICE_PORT = 80
WORKSPACE_PATH = "/var/lib/aidevops"
PLACEHOLDER_TRACKING_URI = "http://mlflow:5000"
_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")


def k8s_name(name: str) -> str:
    """A DNS-1035 label (what Service names must be) made from a deployment name."""
    text = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    text = re.sub(r"^[^a-z]+", "", text)[:63].rstrip("-")
    return text or "model"


def _label_value(value: str) -> str:
    value = re.sub(r"[^A-Za-z0-9_.-]+", "-", value)[:63].strip("-_.")
    return value if _LABEL_VALUE.match(value) else "model"


def render_manifests(
    model_ref: str,
    *,
    name: str | None = None,
    namespace: str = "default",
    image: str = DEFAULT_IMAGE,
    replicas: int = 1,
    min_replicas: int = 1,
    max_replicas: int = 5,
    cpu_target: int = 70,
    tracking_uri: str | None = None,
    follow: bool = False,
    follow_seconds: float = 30.0,
    cpu_request: str = "250m",
    memory_request: str = "512Mi",
    memory_limit: str = "1Gi",
    allowed_hosts: Sequence[str] = (),
    feedback_token: str | None = None,
    allow_pickle: bool = False,
) -> list[dict[str, Any]]:
    """Deployment, Service, HorizontalPodAutoscaler, KServe InferenceService and the feedback token's Secret for
    `model_ref` (plain dicts). Without `feedback_token` the Secret holds a new random one."""
    target = parse_target(model_ref)
    obj_name = k8s_name(name or target.model)
    extra_hosts = list(parse_hosts(list(allowed_hosts)))
    if not _DNS_LABEL.match(namespace or ""):
        raise ConfigError(
            f"Namespace {namespace!r} is not a valid Kubernetes namespace (lowercase letters, digits, '-')."
        )
    if not isinstance(image, str) or not image.strip() or any(c.isspace() for c in image):
        raise ConfigError(
            f"Image {image!r} is not a container image reference; pass e.g. --image registry/aidevops:1.0."
        )
    for label, value, low in (
        ("replicas", replicas, 0),
        ("min replicas", min_replicas, 1),
        ("max replicas", max_replicas, 1),
        ("CPU target", cpu_target, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"The {label} must be a whole number of at least {low}, got {value!r}.")
    if max_replicas < min_replicas:
        raise ConfigError(
            f"Max replicas ({max_replicas}) is below min replicas ({min_replicas}); raise --max-replicas."
        )
    uri = target.uri
    labels = {
        "app.kubernetes.io/name": "aidevops-server",
        "app.kubernetes.io/instance": obj_name,
        "app.kubernetes.io/part-of": "aidevops",
        "app.kubernetes.io/managed-by": "aidevops",
        "aidevops.io/model": _label_value(target.model),
    }
    if target.alias:
        labels["aidevops.io/alias"] = _label_value(target.alias)
    selector = {"app.kubernetes.io/name": "aidevops-server", "app.kubernetes.io/instance": obj_name}
    scrape = {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(CONTAINER_PORT),
        "prometheus.io/path": "/metrics",
    }
    command = [
        "aidevops",
        "serve",
        uri,
        "--host",
        "0.0.0.0",
        "--port",
        str(CONTAINER_PORT),
        "--workspace",
        WORKSPACE_PATH,
        "--follow-alias",
        f"{follow_seconds:g}" if follow and target.alias else "0",
        *(["--allow-pickle"] if allow_pickle else []),  # --allow-pickle or the spec's `serving:` (serving/loader.py)
    ]
    secret_name = f"{obj_name}-feedback"
    # $(VAR) expands variables defined above it in the list: the namespace follows a kustomize overlay's.
    service_hosts = [
        f"{service}{suffix}"
        for service in (obj_name, f"{obj_name}-predictor")
        for suffix in (
            "",
            ".$(AIDEVOPS_POD_NAMESPACE)",
            ".$(AIDEVOPS_POD_NAMESPACE).svc",
            ".$(AIDEVOPS_POD_NAMESPACE).svc.cluster.local",
        )
    ]
    env = [
        {"name": "MLFLOW_TRACKING_URI", "value": tracking_uri or PLACEHOLDER_TRACKING_URI},
        {"name": "AIDEVOPS_HOME", "value": WORKSPACE_PATH},
        {"name": "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "value": "false"},
        {"name": "AIDEVOPS_FEEDBACK_TOKEN", "valueFrom": {"secretKeyRef": {"name": secret_name, "key": "token"}}},
        {"name": "AIDEVOPS_POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "AIDEVOPS_POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "AIDEVOPS_ALLOWED_HOSTS", "value": ",".join([*service_hosts, "$(AIDEVOPS_POD_IP)", *extra_hosts])},
    ]
    probes = {
        "readinessProbe": {
            "httpGet": {"path": "/v2/health/ready", "port": CONTAINER_PORT},
            "periodSeconds": 5,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": "/health", "port": CONTAINER_PORT},
            "periodSeconds": 10,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        # Loading a model from the registry can take a while; liveness starts counting after this passes.
        "startupProbe": {
            "httpGet": {"path": "/health", "port": CONTAINER_PORT},
            "periodSeconds": 2,
            "failureThreshold": 60,
        },
    }
    resources = {"requests": {"cpu": cpu_request, "memory": memory_request}, "limits": {"memory": memory_limit}}
    security = {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    mounts = [{"name": "workspace", "mountPath": WORKSPACE_PATH}, {"name": "tmp", "mountPath": "/tmp"}]
    volumes = [{"name": "workspace", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}]
    container = {
        "name": "server",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": command,
        "ports": [{"name": "http", "containerPort": CONTAINER_PORT, "protocol": "TCP"}],
        "env": env,
        **probes,
        "resources": resources,
        "securityContext": security,
        "volumeMounts": mounts,
    }
    meta = {"name": obj_name, "namespace": namespace, "labels": labels}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": labels, "annotations": scrape},
                "spec": {"containers": [container], "volumes": volumes, "terminationGracePeriodSeconds": 30},
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {**meta, "annotations": scrape},
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": meta,
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": obj_name},
            "minReplicas": min_replicas,
            "maxReplicas": max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": cpu_target}},
                }
            ],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}},
        },
    }
    kserve_container = {k: v for k, v in container.items() if k not in ("name", "startupProbe")}
    kserve_container["name"] = "kserve-container"
    kserve_container["env"] = [*env, {"name": "PROTOCOL", "value": "v2"}]  # KServe: custom predictor protocol
    kserve_container["ports"] = [{"containerPort": CONTAINER_PORT, "protocol": "TCP"}]
    isvc = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            **meta,
            "annotations": {
                "serving.kserve.io/enable-prometheus-scraping": "true",
                "prometheus.kserve.io/port": str(CONTAINER_PORT),
                "prometheus.kserve.io/path": "/metrics",
            },
        },
        "spec": {
            "predictor": {
                "minReplicas": min_replicas,
                "maxReplicas": max_replicas,
                "scaleMetric": "cpu",
                "scaleTarget": cpu_target,
                "containers": [kserve_container],
                "volumes": volumes,
            }
        },
    }
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": secret_name, "namespace": namespace, "labels": labels},
        "type": "Opaque",
        "stringData": {"token": feedback_token or secrets.token_urlsafe(32)},
    }
    return [deployment, service, hpa, isvc, secret]


def without_secrets(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The objects with every Secret's data left out: what is recorded in deploy.db (delete needs only names)."""
    return [
        {k: v for k, v in o.items() if k not in ("data", "stringData")} if o.get("kind") == "Secret" else o
        for o in objects
    ]


def _dumper() -> Any:
    import yaml  # noqa: PLC0415

    class Dumper(yaml.SafeDumper):
        """No `&id001` anchors: objects share dicts (labels, probes), kubectl users expect them written out."""

        def ignore_aliases(self, data: Any) -> bool:
            return True

    return Dumper


def to_yaml(objects: list[dict[str, Any]]) -> str:
    """Multi-document YAML."""
    import yaml  # noqa: PLC0415

    return yaml.dump_all(objects, Dumper=_dumper(), sort_keys=False, default_flow_style=False)


def kubectl_context() -> tuple[str, str]:
    """(kubectl path, current context); ConfigError with one sentence when either is missing."""
    kubectl = kubectl_binary()
    try:
        out = subprocess.run([kubectl, "config", "current-context"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"kubectl could not be run ({exc}); render the manifests with --dry-run instead.") from None
    context = out.stdout.strip()
    if out.returncode != 0 or not context:
        raise ConfigError(
            "kubectl has no current context (`kubectl config current-context` failed); configure a "
            "cluster, or render the manifests with --dry-run."
        )
    return kubectl, context


def _kubectl(kubectl: str, args: list[str], text: str) -> str:
    try:
        out = subprocess.run([kubectl, *args], input=text, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        raise DeploymentError(f"kubectl {args[0]} did not finish within 300 s; check the cluster.") from None
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["no error output"])[-1]
        raise DeploymentError(f"kubectl {args[0]} failed: {last}")
    return out.stdout


def kubectl_binary() -> str:
    """The kubectl on PATH; ConfigError with one sentence when there is none."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise ConfigError(
            "kubectl is not installed here; render the manifests with --dry-run (and --output DIR) "
            "and apply them where kubectl is configured."
        )
    return kubectl


def _render_overlay(kubectl: str, tree: Path, environment: str, kserve: bool) -> str:
    """What `kubectl apply -k` would apply for an environment: `kubectl kustomize` of its overlay."""
    return _kubectl(kubectl, ["kustomize", str(tree / "overlays" / f"{environment}{'-kserve' if kserve else ''}")], "")


def _yaml_documents(text: str) -> list[dict[str, Any]]:
    import yaml  # noqa: PLC0415

    return [d for d in yaml.safe_load_all(text) if d]


def deploy_kubernetes(
    ws: Workspace | None,
    model_ref: str,
    *,
    name: str | None = None,
    dry_run: bool = False,
    output: Path | None = None,
    kserve: bool = False,
    reason: str = "",
    actor: str | None = None,
    environment: str | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Render (dry run) or apply the manifests; records the change in the deployment's history.

    With `environment`, what is rendered or applied is that environment's kustomize overlay (as
    `kubectl apply -k` would apply it); its tree is kept in the workspace under `kubernetes/NAME/`.
    """
    from .kustomize import ENVIRONMENTS, environment_namespace, kustomize_tree, write_tree

    if environment is not None and environment not in ENVIRONMENTS:
        raise ConfigError(f"Environment {environment!r} has no overlay; pick one of {', '.join(ENVIRONMENTS)}.")
    store = DeployStore(ws or Workspace.discover())
    ws = store.workspace
    target = parse_target(model_ref)
    dep_name = name or target.model
    tracking = options.pop("tracking_uri", None)
    warnings = []
    if tracking is None:
        tracking = ws.tracking_uri if ws.tracking_uri.startswith(("http://", "https://")) else None
        if tracking is None:
            warnings.append(
                f"The workspace's MLflow store ({ws.tracking_uri}) is local to this machine; the pods "
                f"use MLFLOW_TRACKING_URI={PLACEHOLDER_TRACKING_URI}: pass --tracking-uri with a server "
                "they can reach."
            )
    token = ensure_feedback_token(ws, dep_name)  # `aidevops token NAME` prints what the Secret holds
    if not options.get("allow_pickle"):  # the pods have no pipelines/: the spec's opt-in travels as the flag
        from ..pipeline.spec import spec_for_model  # noqa: PLC0415

        spec = spec_for_model(ws.root, target.model)
        options["allow_pickle"] = spec is not None and spec.allow_pickle
    objects = render_manifests(target.text, name=dep_name, tracking_uri=tracking, feedback_token=token, **options)
    chosen = [objects[4], objects[3]] if kserve else [objects[4], *objects[:3]]  # the Secret before its readers
    namespace = options.get("namespace", "default")
    result: dict[str, Any] = {
        "name": dep_name,
        "ref": target.text,
        "objects": objects,
        "yaml": to_yaml(objects),
        "warnings": warnings,
        "files": [],
        "applied": False,
    }
    actor = actor or default_actor()
    if dry_run:
        if output is not None:
            result["files"] = [str(p) for p in write_tree(kustomize_tree(objects, namespace), Path(output))]
        elif environment is not None:
            with tempfile.TemporaryDirectory(prefix="aidevops-kustomize-") as folder:
                write_tree(kustomize_tree(objects, namespace), Path(folder))
                result["yaml"] = _render_overlay(kubectl_binary(), Path(folder), environment, kserve)
        store.record(
            dep_name,
            "render",
            reason=reason or f"render manifests for {target.text}",
            actor=actor,
            detail=f"target kubernetes; {len(objects)} objects"
            + (f" written to {output}" if output is not None else " printed")
            + (f"; environment {environment}" if environment else ""),
        )
        return result
    existing = store.get(dep_name)
    if existing is not None and existing.target == "local" and existing.state not in (STOPPED, "failed"):
        raise ConfigError(f"Deployment '{dep_name}' runs locally; pick another --name for its Kubernetes deployment.")
    kubectl, context = kubectl_context()
    text = to_yaml(chosen)
    if environment is not None:
        tree = ws.state / "kubernetes" / k8s_name(dep_name)
        write_tree(kustomize_tree(objects, namespace), tree)
        text = _render_overlay(kubectl, tree, environment, kserve)
        namespace = environment_namespace(namespace, environment)
        chosen = _yaml_documents(text)
    out = _kubectl(kubectl, ["apply", "-f", "-"], text)
    store.put(
        Deployment.serving(
            dep_name,
            target,
            "kubernetes",
            existing,
            state=APPLIED,
            follow=0.0,
            options=json.dumps(
                {
                    "namespace": namespace,
                    "context": context,
                    "kserve": kserve,
                    "environment": environment,
                    "objects": [[o["apiVersion"], o["kind"], o["metadata"]["name"]] for o in chosen],
                    "yaml": to_yaml(without_secrets(chosen)),  # deploy.db rows reach the API: no token there
                }
            ),
        )
    )
    store.record(
        dep_name,
        "deploy",
        reason=reason or f"deploy {target.text} to Kubernetes",
        actor=actor,
        detail=f"context {context}, namespace {namespace}: {out.strip()[:1500]}",
    )
    result["applied"] = True
    result["kubectl"] = out
    return result


def delete(ws: Workspace, dep: Deployment) -> None:
    """`kubectl delete` the objects a Kubernetes deployment applied."""
    kubectl, _ = kubectl_context()
    options = json.loads(dep.options or "{}")
    text = options.get("yaml")
    if not text:
        raise ConfigError(f"Deployment '{dep.name}' has no record of its Kubernetes objects; delete them with kubectl.")
    _kubectl(kubectl, ["delete", "--ignore-not-found", "-f", "-"], text)
