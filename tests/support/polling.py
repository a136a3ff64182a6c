"""Waiting for something a background thread or another process does: polling, with a generous bound."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll(check: Callable[[], T], *, seconds: float, what: str, interval: float = 0.2) -> T:
    """The first truthy value `check()` returns, asking every `interval` seconds. An AssertionError naming `what`
    if none comes within `seconds`: a bound for a loaded machine, never a speed requirement."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"waited {seconds:.0f} s for {what} in vain")
