"""Optimizers that update lists of arrays in place, with every buffer allocated once."""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np

from ..errors import ConfigError

OPTIMIZERS = ("adam", "sgd")


class Optimizer:
    """Base: holds the parameter arrays it updates and one scratch buffer per array."""

    def __init__(self, params: Sequence[Any], learning_rate: float, xp: ModuleType = np) -> None:
        self.params = list(params)
        self.learning_rate = float(learning_rate)
        self.xp = xp
        self._tmp = [xp.empty_like(p) for p in self.params]
        self.t = 0

    def step(self, grads: Sequence[Any]) -> None:
        """Apply one update from grads (same shapes as params); params change in place."""
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        """Moment buffers and step count, for tests and checkpoints."""
        return {"t": self.t}


class SGD(Optimizer):
    """Mini-batch SGD with classical momentum: v = momentum*v - lr*g; p += v."""

    def __init__(
        self, params: Sequence[Any], learning_rate: float = 0.01, momentum: float = 0.9, xp: ModuleType = np
    ) -> None:
        super().__init__(params, learning_rate, xp)
        self.momentum = float(momentum)
        # Stored as w = -v/lr so the update is two in-place ops fewer per step.
        self._w = [xp.zeros_like(p) for p in self.params] if self.momentum else []

    def step(self, grads: Sequence[Any]) -> None:
        """p -= lr * (momentum * w + g), with w the running momentum sum."""
        xp, lr = self.xp, self.learning_rate
        self.t += 1
        for i, (p, g) in enumerate(zip(self.params, grads)):
            tmp = self._tmp[i]
            if self.momentum:
                w = self._w[i]
                xp.multiply(w, self.momentum, out=w)
                xp.add(w, g, out=w)
                g = w
            xp.multiply(g, lr, out=tmp)
            xp.subtract(p, tmp, out=p)

    def state(self) -> dict[str, Any]:
        """Velocity buffers (as -v/lr) and step count."""
        return {"t": self.t, "w": self._w}


class Adam(Optimizer):
    """Adam (Kingma & Ba) with PyTorch's placement of epsilon, fused into ten in-place ops."""

    def __init__(
        self,
        params: Sequence[Any],
        learning_rate: float = 1e-3,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        xp: ModuleType = np,
    ) -> None:
        super().__init__(params, learning_rate, xp)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)
        # n = m/(1-b1) and u = v/(1-b2): the moment updates become n = b1*n + g, u = b2*u + g*g,
        # which saves a multiply per moment per step; the constants fold into the step size.
        self._n = [xp.zeros_like(p) for p in self.params]
        self._u = [xp.zeros_like(p) for p in self.params]

    def step(self, grads: Sequence[Any]) -> None:
        """p -= lr/bc1 * m / (sqrt(v/bc2) + eps), with bias corrections bc = 1 - beta**t."""
        xp = self.xp
        self.t += 1
        b1, b2 = self.beta_1, self.beta_2
        a = self.learning_rate * (1.0 - b1) / (1.0 - b1**self.t)
        c = math.sqrt((1.0 - b2) / (1.0 - b2**self.t))
        scale, shift = c / a, self.epsilon / a
        for p, g, n, u, tmp in zip(self.params, grads, self._n, self._u, self._tmp):
            xp.multiply(n, b1, out=n)
            xp.add(n, g, out=n)
            xp.multiply(u, b2, out=u)
            xp.multiply(g, g, out=tmp)
            xp.add(u, tmp, out=u)
            xp.sqrt(u, out=tmp)
            xp.multiply(tmp, scale, out=tmp)
            xp.add(tmp, shift, out=tmp)
            xp.divide(n, tmp, out=tmp)
            xp.subtract(p, tmp, out=p)

    def state(self) -> dict[str, Any]:
        """First/second moments (as m/(1-b1), v/(1-b2)) and step count."""
        return {"t": self.t, "n": self._n, "u": self._u}


def make_optimizer(
    name: str, params: Sequence[Any], learning_rate: float, *, momentum: float = 0.9, xp: ModuleType = np
) -> Optimizer:
    """Build the optimizer named 'adam' or 'sgd' over params."""
    if name == "adam":
        return Adam(params, learning_rate, xp=xp)
    if name == "sgd":
        return SGD(params, learning_rate, momentum=momentum, xp=xp)
    raise ConfigError(f"optimizer={name!r} is not supported; use one of: {', '.join(OPTIMIZERS)}.")
