"""Per-epoch training callbacks: a base class, a function hook and a tqdm progress bar."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import ConfigError


class Callback:
    """Hooks called by fit(); on_epoch_end returning True stops training after that epoch."""

    def on_train_begin(self, estimator: Any, n_epochs: int) -> None:
        """Called once before the first epoch."""

    def on_epoch_end(self, estimator: Any, epoch: int, logs: dict[str, float]) -> bool | None:
        """Called after each epoch with its history entry; return True to stop."""
        return None

    def on_train_end(self, estimator: Any) -> None:
        """Called once after the last epoch (also when stopped early)."""


class LambdaCallback(Callback):
    """Wraps a function fn(estimator, epoch, logs) -> bool | None as a Callback."""

    def __init__(self, on_epoch_end: Callable[[Any, int, dict], bool | None]) -> None:
        self.fn = on_epoch_end

    def on_epoch_end(self, estimator: Any, epoch: int, logs: dict[str, float]) -> bool | None:
        """Forward to the wrapped function."""
        return self.fn(estimator, epoch, logs)


class ProgressBar(Callback):
    """One tqdm bar per fit (tqdm.auto: a widget in notebooks), advanced once per epoch."""

    def __init__(self, desc: str | None = None, **tqdm_kwargs: Any) -> None:
        self.desc = desc
        self.tqdm_kwargs = tqdm_kwargs
        self.bar = None

    def on_train_begin(self, estimator: Any, n_epochs: int) -> None:
        """Open the bar."""
        from tqdm.auto import tqdm  # noqa: PLC0415 - only paid for when a bar is shown

        self.bar = tqdm(total=n_epochs, desc=self.desc or type(estimator).__name__, unit="epoch", **self.tqdm_kwargs)

    def on_epoch_end(self, estimator: Any, epoch: int, logs: dict[str, float]) -> bool | None:
        """Advance by one epoch and show the latest losses."""
        if self.bar is not None:
            shown = {k: f"{v:.4g}" for k, v in logs.items() if k in ("loss", "val_loss", "val_score")}
            self.bar.set_postfix(shown, refresh=False)
            self.bar.update(1)
        return None

    def on_train_end(self, estimator: Any) -> None:
        """Close the bar."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def interactive() -> bool:
    """True when stderr is a terminal or we run inside IPython/Jupyter."""
    ipython = sys.modules.get("IPython")
    if ipython is not None and getattr(ipython, "get_ipython", lambda: None)() is not None:
        return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class CallbackList:
    """Runs a list of callbacks in order; any True from on_epoch_end asks to stop."""

    def __init__(self, callbacks: Iterable[Any] | None, progress: bool | None) -> None:
        items = [] if callbacks is None else list(callbacks) if isinstance(callbacks, (list, tuple)) else [callbacks]
        self.callbacks: list[Callback] = []
        for cb in items:
            if isinstance(cb, Callback):
                self.callbacks.append(cb)
            elif callable(cb):
                self.callbacks.append(LambdaCallback(cb))
            else:
                raise ConfigError(
                    f"callbacks must be Callback instances or functions fn(estimator, epoch, logs), got {cb!r}."
                )
        if progress is None:
            progress = interactive()
        if progress and not any(isinstance(cb, ProgressBar) for cb in self.callbacks):
            self.callbacks.insert(0, ProgressBar())

    def on_train_begin(self, estimator: Any, n_epochs: int) -> None:
        """Forward to every callback."""
        for cb in self.callbacks:
            cb.on_train_begin(estimator, n_epochs)

    def on_epoch_end(self, estimator: Any, epoch: int, logs: dict[str, float]) -> bool:
        """Forward to every callback (each sees a copy of logs); True if any asked to stop."""
        stop = False
        for cb in self.callbacks:
            stop = bool(cb.on_epoch_end(estimator, epoch, dict(logs))) or stop
        return stop

    def on_train_end(self, estimator: Any) -> None:
        """Forward to every callback."""
        for cb in self.callbacks:
            cb.on_train_end(estimator)
