"""Array backends: NumPy on the CPU, CuPy on a CUDA GPU, chosen once per fit."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from ..errors import BackendUnavailableError, ConfigError

logger = logging.getLogger("aidevops.trainer")

BACKEND_NAMES = ("auto", "numpy", "cupy")
ENV_VAR = "AIDEVOPS_BACKEND"


@dataclass(frozen=True)
class Backend:
    """An array module (`xp`) plus the two conversions the estimators need."""

    name: str
    xp: ModuleType

    def asnumpy(self, a: Any) -> np.ndarray:
        """Return `a` as a NumPy array on the host (a no-op for NumPy arrays)."""
        if self.name == "numpy":
            return np.asarray(a)
        return self.xp.asnumpy(a)

    def asarray(self, a: Any, dtype: Any = None) -> Any:
        """Return `a` as an array of this backend (copied to the device for CuPy)."""
        return self.xp.asarray(a, dtype=dtype)


def cupy_available() -> bool:
    """True only when CuPy imports and sees a usable CUDA device."""
    try:
        import cupy  # noqa: PLC0415 - optional and heavy, so imported only when asked

        # Importing CuPy succeeds without a GPU; only is_available() tells the truth.
        return bool(cupy.cuda.is_available())
    except (ImportError, RuntimeError, OSError, AttributeError):
        return False


def _numpy_backend() -> Backend:
    return Backend("numpy", np)


def _cupy_backend(why: str) -> Backend:
    if not cupy_available():
        raise BackendUnavailableError(
            f"The cupy backend was requested ({why}) but no CUDA device is usable here "
            "(cupy is not installed or cupy.cuda.is_available() is false); "
            "use backend='numpy' or 'auto', or run on a machine with a GPU and cupy-cuda12x installed."
        )
    import cupy  # noqa: PLC0415

    return Backend("cupy", cupy)


def _normalise(name: Any, where: str) -> str:
    if not isinstance(name, str) or name.strip().lower() not in BACKEND_NAMES:
        raise ConfigError(f"Unknown array backend {name!r} in {where}; use one of {', '.join(BACKEND_NAMES)}.")
    return name.strip().lower()


def get_backend(name: str = "auto") -> Backend:
    """Resolve 'auto' | 'numpy' | 'cupy' to a Backend, logging the choice and why."""
    name = _normalise(name, "backend")
    if name == "auto":
        env = os.environ.get(ENV_VAR, "").strip()
        if env and env.lower() != "auto":
            # An environment override is an explicit request: it may raise, never falls back.
            name = _normalise(env, f"the {ENV_VAR} environment variable")
            backend = _cupy_backend(f"{ENV_VAR}={env}") if name == "cupy" else _numpy_backend()
            why = f"{ENV_VAR}={env}"
        elif cupy_available():
            backend, why = _cupy_backend("auto"), "auto: a CUDA device is available"
        else:
            backend, why = _numpy_backend(), "auto: no usable CUDA device"
    elif name == "cupy":
        backend, why = _cupy_backend("backend='cupy'"), "requested"
    else:
        backend, why = _numpy_backend(), "requested"
    logger.info("array backend: %s (%s)", backend.name, why)
    return backend
