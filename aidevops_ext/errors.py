"""Errors a user can cause: each carries one sentence naming the problem and the fix."""

from __future__ import annotations


class AidevopsError(Exception):
    """Base for user-facing errors: the CLI prints the message and exits with `exit_code`; the REST API answers
    `http_status` with the message as `{"error": ...}`."""

    exit_code = 2
    http_status = 400


class ConfigError(AidevopsError):
    """Bad parameters, spec files or settings."""


class NotFound(ConfigError):
    """A named thing (deployment, pipeline run, job, registered model) does not exist."""

    http_status = 404


class BackendUnavailableError(AidevopsError):
    """An array backend was asked for explicitly but cannot run here."""


class ModelFileError(AidevopsError):
    """A model file is corrupt, truncated, foreign or from a newer format."""


class DataError(AidevopsError):
    """A dataset, file or column cannot be loaded as asked."""
