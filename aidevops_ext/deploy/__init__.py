"""Deployments (docs/architecture.md §5): local supervised servers with zero-downtime switches, rollback, canaries and a
history of every change; Kubernetes manifests (Deployment, Service, HPA, KServe InferenceService).

Public API (importing this package is cheap: MLflow, Starlette and YAML load when used):
- `deploy(ws, "NAME@ALIAS" | "NAME/VERSION", name=, port=, host=, follow=, dry_run=)` → DeployResult;
- `switch(ws, name, version)`, `rollback(ws, name)`, `canary(ws, name, version, share=)`, `promote(ws, name)`,
  `undeploy(ws, name)`, `undeploy_all(ws)`;
- `list_deployments(ws)`, `status(ws, name)`, `history(ws, name)`, `get(ws, name)`;
- `smoke_protocols(ws, name)` (both protocols on reference rows) and `curl_example(deployment)`;
- `render_manifests(...)`, `deploy_kubernetes(...)` (kubernetes.py);
- `DeployStore`, `Deployment`, `HistoryEntry` (store.py), `DeploymentError` (local.py).

Modules: store.py (deploy.db), versions.py (references, cache, registry check), local.py (processes and
the admin API client), supervisor.py and child.py (the processes), manager.py (operations), kubernetes.py.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "deploy": ".manager",
    "switch": ".manager",
    "rollback": ".manager",
    "canary": ".manager",
    "promote": ".manager",
    "undeploy": ".manager",
    "undeploy_all": ".manager",
    "list_deployments": ".manager",
    "status": ".manager",
    "history": ".manager",
    "get": ".manager",
    "smoke_protocols": ".manager",
    "curl_example": ".manager",
    "DeployResult": ".manager",
    "render_manifests": ".kubernetes",
    "deploy_kubernetes": ".kubernetes",
    "DeployStore": ".store",
    "Deployment": ".store",
    "HistoryEntry": ".store",
    "DeploymentError": ".local",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'aidevops_ext.deploy' has no attribute {name!r}")
    import importlib  # noqa: PLC0415

    return getattr(importlib.import_module(module, __name__), name)
