"""Checks of what a client sends: each bad value ends in one ConfigError sentence naming it and the fix."""

from __future__ import annotations

import json
import re
from typing import Any

from ..errors import ConfigError

MAX_REASON = 500
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\- ]{0,127}$")  # registered model names as MLflow users write them
_ALIAS = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,62}$")
_VERSION = re.compile(r"^[1-9][0-9]{0,8}$")


def body_object(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object ({} when empty)."""
    if not raw or not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ConfigError("The request body is not valid JSON; send a JSON object such as {\"reason\": \"...\"}.") from None
    if not isinstance(data, dict):
        raise ConfigError("The request body must be a JSON object, e.g. {\"reason\": \"...\"}.")
    return data


def only(body: dict[str, Any], allowed: tuple[str, ...]) -> None:
    """Refuse fields the operation does not take (a typo must not be silently ignored)."""
    extra = sorted(set(body) - set(allowed))
    if extra:
        raise ConfigError(f"Unknown field(s) {', '.join(extra)}; this operation takes {', '.join(allowed) or 'no fields'}.")


def text(body: dict[str, Any], key: str, pattern: re.Pattern | None = None, *, required: bool = False,
         what: str = "") -> str | None:
    """A string field (None when absent and optional)."""
    value = body.get(key)
    if value is None or value == "":
        if required:
            raise ConfigError(f"Field '{key}' is missing; give {what or 'a value'}.")
        return None
    if isinstance(value, int) and not isinstance(value, bool) and key == "version":
        value = str(value)
    if not isinstance(value, str) or (pattern is not None and not pattern.match(value)):
        raise ConfigError(f"Field '{key}' has the value {str(value)[:80]!r}, which is not {what or 'allowed'}.")
    return value


def reason(body: dict[str, Any]) -> str:
    """The free-text 'why' kept in the deployment history."""
    value = body.get("reason", "")
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_REASON:
        raise ConfigError(f"Field 'reason' must be text of at most {MAX_REASON} characters.")
    return value.strip()


def model_ref(body: dict[str, Any]) -> str:
    """`NAME@ALIAS` or `NAME/VERSION` from {"model", "alias"} or {"model", "version"}."""
    model = text(body, "model", _NAME, required=True, what="a registered model's name")
    alias = text(body, "alias", _ALIAS, what="an alias such as 'champion'")
    version = text(body, "version", _VERSION, what="a version number such as '2'")
    if (alias is None) == (version is None):
        raise ConfigError("Give exactly one of 'alias' (e.g. \"champion\") or 'version' (e.g. \"2\") to say what to deploy.")
    return f"{model}@{alias}" if alias else f"{model}/{version}"


def version(body: dict[str, Any], *, required: bool) -> str | None:
    """A model version number."""
    return text(body, "version", _VERSION, required=required, what="a version number such as '2'")


def share(body: dict[str, Any], *, required: bool) -> float | None:
    """A canary's share of traffic, 0 to 1."""
    value = body.get("share")
    if value is None:
        if required:
            raise ConfigError("Field 'share' is missing; give the canary's share of traffic between 0 and 1 (e.g. 0.1).")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise ConfigError(f"Field 'share' must be a number between 0 and 1 (e.g. 0.1 for 10 %), got {str(value)[:40]!r}.")
    return float(value)


def flag(body: dict[str, Any], key: str) -> bool:
    """A boolean field (absent: false)."""
    value = body.get(key, False)
    if not isinstance(value, bool):
        raise ConfigError(f"Field '{key}' must be true or false.")
    return value


def limit(value: str | None, default: int = 50, most: int = 500) -> int:
    """A ?limit= query value."""
    if value is None or value == "":
        return default
    if not value.isdigit() or not 1 <= int(value) <= most:
        raise ConfigError(f"Query parameter 'limit' must be a whole number from 1 to {most}, got {value[:20]!r}.")
    return int(value)


def number_query(value: str | None, key: str, default: float) -> float:
    """A numeric ?key= query value (range checks are the core's)."""
    if value is None or value == "":
        return default
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"Query parameter '{key}' must be a number, got {value[:20]!r}.") from None


def whole_query(value: str | None, key: str, default: int) -> int:
    """A whole-number ?key= query value (range checks are the core's)."""
    if value is None or value == "":
        return default
    if not value.isdigit():
        raise ConfigError(f"Query parameter '{key}' must be a whole number, got {value[:20]!r}.")
    return int(value)


def params_object(body: dict[str, Any], key: str = "params") -> dict[str, Any] | None:
    """Pipeline param overrides {name: value} (None when absent); names are checked against the spec by the core."""
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(k, str) and k for k in value):
        raise ConfigError(f"Field '{key}' must be a JSON object of param names to values, e.g. {{\"epochs\": 4}}.")
    return value


def pipeline_name(body: dict[str, Any]) -> str:
    """The name of a spec in pipelines/."""
    return text(body, "pipeline", _PIPELINE, required=True, what="the name of a pipeline in pipelines/ (e.g. ci)")


_PIPELINE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,127}$")
