"""Following a registry alias: when `models:/NAME@ALIAS` moves, load, smoke-test and switch to the new version.

MLflow's server never notices an alias move (MLflow issue 4039). The follower polls the registry and
acts only when the alias *changes* from what it saw last, so a manual rollback is not undone on the
next poll; a version that fails to load or its smoke test is refused once and not retried until the
alias moves again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Protocol

import anyio

from ..workspace import Workspace
from .errors import ModelRefused
from .loader import ModelRef, resolve_version

log = logging.getLogger("aidevops.serving")


class FollowedSlots(Protocol):
    """What the follower drives: a server's ModelSlots, or deploy/fanout.py's slots of every worker at once."""

    @property
    def active(self) -> Any: ...

    def switch(self, source: Any, *, actor: str | None = None, reason: str = "") -> Any: ...


class AliasFollower:
    """Polls `ref`'s alias every `interval` seconds; `run(slots)` is started by the app's lifespan."""

    def __init__(self, ref: ModelRef, workspace: Workspace, interval: float, seen_version: str | None) -> None:
        self.ref = ref
        self.workspace = workspace
        self.interval = interval
        self.seen = seen_version
        self.last_error_at = 0.0

    def check(self, slots: FollowedSlots) -> bool:
        """One poll (blocking): True if the slots switched."""
        version = resolve_version(self.ref, self.workspace)
        if version == self.seen:
            return False
        previous, self.seen = self.seen, version
        if version == slots.active.version:
            return False
        try:
            slots.switch(
                self.ref.pinned(version),
                actor="alias-follower",
                reason=f"{self.ref.uri} moved from v{previous} to v{version}",
            )
        except ModelRefused as exc:
            log.warning("alias follower: %s", exc)
            return False
        return True

    async def run(self, slots: FollowedSlots) -> None:
        """Poll until cancelled; registry hiccups are logged (at most once a minute) and retried."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                await anyio.to_thread.run_sync(self.check, slots)
            except ModelRefused as exc:  # the alias vanished: keep serving what we have
                self._warn(str(exc))
            except Exception as exc:  # noqa: BLE001 - the registry may be down; serving goes on
                self._warn(f"alias follower could not poll {self.ref.uri}: {type(exc).__name__}: {exc}")

    def _warn(self, message: str) -> None:
        now = time.monotonic()
        if now - self.last_error_at > 60:
            self.last_error_at = now
            log.warning(message)
