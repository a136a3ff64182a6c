"""Errors a user can cause: each carries one sentence naming the problem and the fix."""

from __future__ import annotations


class AidevopsError(Exception):
    """Base for user-facing errors; the CLI prints the message and exits non-zero."""

    exit_code = 2


class ConfigError(AidevopsError):
    """Bad parameters, spec files or settings."""


class BackendUnavailableError(AidevopsError):
    """An array backend was asked for explicitly but cannot run here."""


class ModelFileError(AidevopsError):
    """A model file is corrupt, truncated, foreign or from a newer format."""


class DataError(AidevopsError):
    """A dataset, file or column cannot be loaded as asked."""
