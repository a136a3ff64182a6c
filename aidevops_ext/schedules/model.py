"""A schedule: which pipeline, when, with which params, who hears about it; and what happened last.

The definition's rules (name, cron, webhook URL, params size) are checked here as the model is built, each
refusal one ConfigError sentence; whether the pipeline and its params exist is checked against the spec by
`store.add`, which knows the workspace.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, field_validator

from ..errors import ConfigError
from .cron import check_cron, utc

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$")
MAX_URL = 2048
MAX_PARAMS_BYTES = 8192  # overrides are a handful of values; the file is read on every scheduler tick
RUNNING, SUCCEEDED, FAILED = "running", "succeeded", "failed"
NotifyFormat = Literal["auto", "slack", "json"]


def check_name(name: object, what: str = "schedule name") -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ConfigError(
            f"{what} {str(name)[:70]!r} is not valid; use up to 64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit."
        )
    return name


def check_url(url: object) -> str:
    """An http(s) URL with a host, or one sentence."""
    text = url.strip() if isinstance(url, str) else ""
    parts = urlsplit(text) if text and len(text) <= MAX_URL and not any(c.isspace() for c in text) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        shown = str(url)[:60]
        raise ConfigError(
            f"webhook URL {shown!r} is not an http:// or https:// URL with a host; "
            "pass e.g. --notify https://hooks.slack.com/services/..."
        )
    return text


def url_host(url: str | None) -> str | None:
    """What may be shown of a webhook URL: its host (a Slack webhook's path is its secret)."""
    if not url:
        return None
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname


class Schedule(BaseModel):
    """One schedule as stored in `.aidevops/schedules.json`."""

    model_config = ConfigDict(extra="ignore", validate_assignment=True)

    name: Annotated[str, AfterValidator(check_name)]
    pipeline: Annotated[str, AfterValidator(lambda value: check_name(value, "pipeline name"))]
    cron: Annotated[str, AfterValidator(check_cron)]
    params: dict[str, Any] = {}
    notify: Annotated[str, AfterValidator(check_url)] | None = None
    notify_format: NotifyFormat = "auto"
    created: datetime
    # What happened last: the slot consumed, the run it started, how that ended.
    last_slot: datetime | None = None
    run_slot: datetime | None = None  # the slot of the last run started (later slots may have been skipped)
    last_run: datetime | None = None
    last_status: str | None = None
    last_run_id: str | None = None
    job_id: str | None = None
    last_error: str | None = None
    notify_error: str | None = None

    @field_validator("params")
    @classmethod
    def _params(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(json.dumps(value, default=str)) > MAX_PARAMS_BYTES:
            raise ConfigError(
                f"the params of a schedule take more than {MAX_PARAMS_BYTES} bytes; pass fewer or shorter."
            )
        return value

    @field_validator("created", "last_slot", "run_slot", "last_run")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else utc(value)

    def since(self) -> datetime:
        """Slots after this moment are still to run."""
        return self.last_slot or self.created

    def uses_slack(self) -> bool:
        host = (urlsplit(self.notify).hostname or "") if self.notify else ""
        return self.notify_format == "slack" or (self.notify_format == "auto" and host == "hooks.slack.com")


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z, to the second."""
    return None if moment is None else utc(moment).replace(microsecond=0).isoformat().replace("+00:00", "Z")
