"""Model slots: the active version, the previous one (for rollback), an optional canary with a traffic share,
and an optional shadow that sees a mirrored copy of the active version's traffic (serving/shadow.py) but never
answers a client.

Every change builds a new immutable `SlotState` and publishes it with one reference assignment, so
a request reads `slots.state` once and finishes on the models it started with: no request fails
during a switch, and nothing on the request path takes a lock. Writers (switch, rollback, canary)
are serialised by a lock and run off the event loop (they may load models for seconds).

A version enters a slot only after `prepare` loaded it and it passed the smoke test (see smoke.py);
a version that fails either is refused with ModelRefused and the slots stay as they were.
"""

from __future__ import annotations

import getpass
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..workspace import Workspace
from .errors import ModelRefused, SlotError
from .loader import load_model_uri
from .metrics import ModelStats, ServerStats
from .models import ServedModel
from .smoke import smoke_test

if TYPE_CHECKING:
    from .shadow import ShadowMirror

log = logging.getLogger("aidevops.serving")


@dataclass(frozen=True)
class SlotState:
    """One consistent view of the slots; replaced whole, never mutated."""

    active: ServedModel
    previous: ServedModel | None = None
    canary: ServedModel | None = None
    canary_share: float = 0.0
    shadow: ServedModel | None = None

    def pick(self, _random: Callable[[], float] = random.random) -> tuple[str, ServedModel]:
        """The slot a new request goes to: the canary with probability canary_share, else active."""
        if self.canary is not None and _random() < self.canary_share:
            return "canary", self.canary
        return "active", self.active

    def models(self) -> list[tuple[str, ServedModel]]:
        """(slot, model) for every filled slot."""
        out = [("active", self.active)]
        if self.previous is not None:
            out.append(("previous", self.previous))
        if self.canary is not None:
            out.append(("canary", self.canary))
        return out

    def find(self, version: str) -> ServedModel | None:
        """The loaded model of a version, preferring active, then canary, then previous."""
        for model in (self.active, self.canary, self.previous):
            if model is not None and model.version == version:
                return model
        return None


@dataclass(frozen=True)
class SlotEvent:
    """One change of the slots: who, when, why, and from/to which versions."""

    operation: str
    actor: str
    reason: str
    at: float
    from_version: str | None
    to_version: str | None
    ok: bool = True
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)


@dataclass
class ModelSlots:
    """The slots of one server; the in-process API the deployment manager and the admin endpoints use."""

    initial: ServedModel
    workspace: Workspace | None = None
    alias: str | None = None  # the alias this server serves (e.g. "champion"); labels models loaded by version
    loader: Callable[..., ServedModel] = load_model_uri
    on_event: Callable[[SlotEvent], None] | None = None
    server_stats: ServerStats = field(default_factory=ServerStats)
    allow_pickle: bool = False  # load pyfuncs that unpickle or run their own code (serving/loader.py)
    shadow_log: Path | str | None = None  # deploy.db the shadow's answers go to (create_app sets the server's)
    deployment: str | None = None  # the deployment these slots serve (keys the shadow log)

    def __post_init__(self) -> None:
        if self.initial.stats is None:
            self.initial.stats = ModelStats()
        if self.alias is None:
            self.alias = self.initial.alias
        self.state = SlotState(active=self.initial)
        self._lock = threading.RLock()
        self.history: deque[SlotEvent] = deque(maxlen=200)
        self._mirror: ShadowMirror | None = None

    # ------------------------------------------------------------------ reading
    @property
    def active(self) -> ServedModel:
        """The model serving most traffic."""
        return self.state.active

    @property
    def previous(self) -> ServedModel | None:
        """The model a rollback returns to."""
        return self.state.previous

    @property
    def canary(self) -> ServedModel | None:
        """The model taking canary_share of traffic, if any."""
        return self.state.canary

    def describe(self) -> dict[str, Any]:
        """JSON-able view of every slot and the recent history."""
        st = self.state
        return {
            "alias": self.alias,
            "active": st.active.describe(),
            "previous": None if st.previous is None else st.previous.describe(),
            "canary": None if st.canary is None else st.canary.describe(),
            "canary_share": st.canary_share,
            "shadow": None if self._mirror is None else self._mirror.describe(),
            "history": [e.to_dict() for e in list(self.history)[-20:]],
        }

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_uri(cls, uri: str, workspace: Workspace | None = None, **kwargs: Any) -> ModelSlots:
        """Slots whose active model is `uri`, loaded and smoke-tested (ModelRefused if it fails)."""
        from .loader import parse_uri  # noqa: PLC0415

        alias = kwargs.pop("alias", None) or parse_uri(uri).alias
        loader = kwargs.get("loader", load_model_uri)
        allow_pickle = bool(kwargs.get("allow_pickle", False))
        slots = cls(
            prepare_model(uri, workspace, alias=alias, loader=loader, allow_pickle=allow_pickle),
            workspace=workspace,
            alias=alias,
            **kwargs,
        )
        slots._count_load("loaded")
        return slots

    def prepare(self, source: str | ServedModel, *, alias: str | None = None) -> ServedModel:
        """Load (if given a URI) and smoke-test a model without touching the slots; ModelRefused on failure."""
        try:
            model = prepare_model(
                source, self.workspace, alias=alias or self.alias, loader=self.loader, allow_pickle=self.allow_pickle
            )
        except ModelRefused:
            self._count_load("refused")
            raise
        self._count_load("loaded")
        return model

    def _prepare_for(self, operation: str, source: str | ServedModel, actor: str | None, reason: str) -> ServedModel:
        """`prepare(source)` for `operation`; a refused model is recorded in the history as a failed one, then raised."""
        try:
            return self.prepare(source)
        except ModelRefused as exc:
            self._record(
                operation, actor, reason, self.state.active.version, _uri_version(source), ok=False, detail=str(exc)
            )
            raise

    def _filled(self, slot: str, missing: str) -> tuple[SlotState, ServedModel]:
        """The state and the model in its `slot` (previous, canary or shadow); SlotError(`missing`) if it is empty."""
        st = self.state
        model = getattr(st, slot)
        if model is None:
            raise SlotError(missing)
        return st, model

    def _count_load(self, result: str) -> None:
        self.server_stats.loads[result] = self.server_stats.loads.get(result, 0) + 1

    # ------------------------------------------------------------------ changing
    def switch(self, source: str | ServedModel, *, actor: str | None = None, reason: str = "") -> SlotEvent:
        """Load + smoke-test `source`, then make it active (the old active becomes previous), atomically."""
        with self._lock:
            return self.activate(self._prepare_for("switch", source, actor, reason), actor=actor, reason=reason)

    def activate(self, model: ServedModel, *, actor: str | None = None, reason: str = "") -> SlotEvent:
        """Make an already prepared model active; the old active becomes previous; a canary of it is cleared."""
        with self._lock:
            st = self.state
            canary, share = (None, 0.0) if st.canary is model else (st.canary, st.canary_share)
            self.state = replace(st, active=model, previous=st.active, canary=canary, canary_share=share)
            return self._record("switch", actor, reason, st.active.version, model.version)

    def rollback(self, *, actor: str | None = None, reason: str = "") -> SlotEvent:
        """Swap active and previous (a rollback is a swap back); SlotError if there is no previous version."""
        with self._lock:
            st, previous = self._filled(
                "previous", "There is no previous version to roll back to; switch to a version explicitly instead."
            )
            self.state = replace(st, active=previous, previous=st.active)
            return self._record("rollback", actor, reason, st.active.version, previous.version)

    def set_canary(
        self, source: str | ServedModel, share: float, *, actor: str | None = None, reason: str = ""
    ) -> SlotEvent:
        """Load + smoke-test `source` and send it `share` (0..1) of the traffic."""
        share = _check_share(share)
        with self._lock:
            model = self._prepare_for("canary", source, actor, reason)
            st = self.state
            self.state = replace(st, canary=model, canary_share=share)
            return self._record("canary", actor, reason, st.active.version, model.version, detail=f"share={share}")

    def set_canary_share(self, share: float, *, actor: str | None = None, reason: str = "") -> SlotEvent:
        """Change the canary's traffic share."""
        share = _check_share(share)
        with self._lock:
            st, canary = self._filled("canary", "There is no canary; start one with a model URI first.")
            self.state = replace(st, canary_share=share)
            return self._record(
                "canary_share", actor, reason, st.active.version, canary.version, detail=f"share={share}"
            )

    def promote_canary(self, *, actor: str | None = None, reason: str = "") -> SlotEvent:
        """Make the canary active (the old active becomes previous)."""
        with self._lock:
            st, canary = self._filled("canary", "There is no canary to promote.")
            self.state = replace(st, active=canary, previous=st.active, canary=None, canary_share=0.0)
            return self._record("promote_canary", actor, reason, st.active.version, canary.version)

    def clear_canary(self, *, actor: str | None = None, reason: str = "") -> SlotEvent:
        """Stop sending traffic to the canary and unload it."""
        with self._lock:
            st, canary = self._filled("canary", "There is no canary to clear.")
            self.state = replace(st, canary=None, canary_share=0.0)
            return self._record("clear_canary", actor, reason, st.active.version, canary.version)

    # ------------------------------------------------------------------ shadow
    def set_shadow(self, source: str | ServedModel, *, actor: str | None = None, reason: str = "") -> SlotEvent:
        """Load + smoke-test `source` into the shadow slot: it gets a mirrored copy of the active version's
        traffic after each answer is sent, and never answers a client. Replaces a shadow already there."""
        with self._lock:
            model = self._prepare_for("shadow", source, actor, reason)
            from .shadow import ShadowMirror  # noqa: PLC0415

            old = self._mirror
            self._mirror = ShadowMirror(model, self.shadow_log, self.deployment)
            st = self.state
            self.state = replace(st, shadow=model)
            if old is not None:
                old.stop()
            return self._record("shadow", actor, reason, st.active.version, model.version)

    def clear_shadow(self, *, actor: str | None = None, reason: str = "") -> SlotEvent:
        """Stop mirroring traffic to the shadow and unload it (what it answered stays in the shadow log)."""
        with self._lock:
            st, shadow = self._filled(
                "shadow", "There is no shadow to stop; start one with `aidevops shadow NAME VERSION`."
            )
            mirror, self._mirror = self._mirror, None
            self.state = replace(st, shadow=None)
            if mirror is not None:
                mirror.stop()
            detail = "" if mirror is None else f"mirrored={mirror.stats.mirrored} dropped={mirror.stats.dropped}"
            return self._record("shadow_stop", actor, reason, st.active.version, shadow.version, detail=detail)

    @property
    def shadow_mirror(self) -> ShadowMirror | None:
        """The running shadow's queue, worker and counters (None: no shadow)."""
        return self._mirror

    def mirror(self, model: ServedModel, request_id: str, data: Any, predictions: Any) -> None:
        """After an answer was sent: offer the request to the shadow if `model` is the active version (never blocks)."""
        mirror = self._mirror
        if mirror is not None and model is self.state.active:
            mirror.offer(request_id, model, data, predictions)

    def close(self) -> None:
        """Stop the shadow's worker (server shutdown); what it has compared is stored first."""
        mirror, self._mirror = self._mirror, None
        if mirror is not None:
            mirror.stop()

    def _record(
        self,
        operation: str,
        actor: str | None,
        reason: str,
        from_version: str | None,
        to_version: str | None,
        *,
        ok: bool = True,
        detail: str = "",
    ) -> SlotEvent:
        event = SlotEvent(
            operation, actor or _default_actor(), reason or "", time.time(), from_version, to_version, ok, detail
        )
        self.history.append(event)
        if ok:
            self.server_stats.swaps[operation] = self.server_stats.swaps.get(operation, 0) + 1
        log.info(
            "slots: %s %s -> %s by %s (%s)%s",
            operation,
            from_version,
            to_version,
            event.actor,
            event.reason or "no reason given",
            "" if ok else f" REFUSED: {detail}",
        )
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:  # noqa: BLE001 - a listener's failure must not undo or fail the change
                log.exception("slots: on_event listener failed")
        return event


def prepare_model(
    source: str | ServedModel,
    workspace: Workspace | None = None,
    *,
    alias: str | None = None,
    loader: Callable[..., ServedModel] = load_model_uri,
    allow_pickle: bool = False,
) -> ServedModel:
    """Load (if given a URI) and smoke-test a model; ModelRefused if either fails.

    `allow_pickle`: the loader may load pyfuncs that unpickle or run their own code (serving/loader.py)."""
    if isinstance(source, ServedModel):
        model = source
    else:
        model = loader(source, workspace, alias=alias, allow_pickle=allow_pickle)
    if model.alias is None:
        model.alias = alias
    model.smoke = smoke_test(model)
    if model.stats is None:
        model.stats = ModelStats()
    return model


def _check_share(share: Any) -> float:
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0.0 <= float(share) <= 1.0:
        raise SlotError(f"The canary share must be a number between 0 and 1, got {share!r}.")
    return float(share)


def _uri_version(source: Any) -> str | None:
    return source.version if isinstance(source, ServedModel) else str(source)


def _default_actor() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user database in some containers
        return "unknown"
