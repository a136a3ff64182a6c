"""The model server (docs/architecture.md §5): MLflow's scoring protocol and the Open Inference Protocol v2 on Starlette/uvicorn.

Public API:
- `serve(model_uri, host=..., port=...)`: load, smoke-test and serve a model until interrupted;
- `build(model_uri, ...)`: the same app without running it (for any ASGI server or a TestClient);
- `ModelSlots` (+ `SlotState`, `SlotEvent`): active/previous/canary slots with atomic switch, rollback and canary;
- `create_app(slots, config)`: the ASGI app over given slots; `ServingConfig`: limits, logging, admin token;
- `load_model_uri(uri)`: a `ServedModel` from `models:/NAME@ALIAS`, `models:/NAME/VERSION`, a `.npz` or an MLflow folder.

Importing this package is cheap: Starlette, uvicorn and MLflow load when used.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ModelRefused",
    "ModelSlots",
    "ServingConfig",
    "SlotError",
    "SlotEvent",
    "SlotState",
    "build",
    "create_app",
    "load_model_uri",
    "serve",
]

_EXPORTS = {
    "ModelRefused": ".errors",
    "SlotError": ".errors",
    "ModelSlots": ".slots",
    "SlotEvent": ".slots",
    "SlotState": ".slots",
    "ServingConfig": ".config",
    "build": ".server",
    "serve": ".server",
    "create_app": ".app",
    "load_model_uri": ".loader",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'aidevops_ext.serving' has no attribute {name!r}")
    import importlib  # noqa: PLC0415

    return getattr(importlib.import_module(module, __name__), name)
