"""Errors of the model server: bad requests (4xx, one sentence each) and refused model versions."""

from __future__ import annotations

from ..errors import AidevopsError


class RequestError(Exception):
    """A request the server refuses: HTTP `status`, one sentence naming the problem and the fix."""

    __slots__ = ("message", "status", "code")

    def __init__(self, message: str, status: int = 400, code: str = "BAD_REQUEST") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code  # MLflow's error_code vocabulary, used in /invocations error bodies


class ModelRefused(AidevopsError):
    """A model version failed to load or failed its smoke test; the serving slots are unchanged."""

    http_status = 422


class SlotError(AidevopsError):
    """A slot operation cannot be done in the current state (no previous version, no canary...)."""

    http_status = 409
