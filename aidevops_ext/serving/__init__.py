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

# The module each public name is imported from when first used.
_EXPORTS = {
    ".errors": ("ModelRefused", "SlotError"),
    ".slots": ("ModelSlots", "SlotEvent", "SlotState"),
    ".config": ("ServingConfig",),
    ".server": ("build", "serve"),
    ".app": ("create_app",),
    ".loader": ("load_model_uri",),
}
_HOME = {name: module for module, names in _EXPORTS.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'aidevops_ext.serving' has no attribute {name!r}")
    import importlib  # noqa: PLC0415

    return getattr(importlib.import_module(module, __name__), name)
