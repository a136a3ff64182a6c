"""The webhook after a scheduled run: JSON POSTed to the schedule's `--notify` URL, Slack-compatible or generic.

Slack's incoming webhooks (and the Slack-compatible ones of Mattermost, Rocket.Chat or Discord's `/slack`)
take `{"text": ..., "attachments": [{"fields": [...]}]}`; that form is sent to hooks.slack.com or when the
schedule says `--notify-format slack`. Anything else gets the generic JSON (`payload`), one flat object a
receiver can read without knowing Slack. A webhook that is slow, unreachable or failing is one sentence in
the log and on the schedule (`notify_error`), never a failed run: the run's outcome is already recorded.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from .. import __version__
from .model import SUCCEEDED, Schedule, url_host

TIMEOUT_S = 5.0
MAX_ERROR = 500  # a failed step's message can be a whole traceback; a chat message wants its first lines


@dataclass
class Outcome:
    """How one scheduled run ended."""

    status: str  # succeeded | failed
    slot: str | None = None
    run_id: str | None = None
    job_id: str | None = None
    started: str | None = None
    finished: str | None = None
    failed_step: str | None = None
    error: str | None = None


def payload(schedule: Schedule, outcome: Outcome) -> dict[str, Any]:
    """The generic JSON: every field, null where it does not apply."""
    return {
        "event": "pipeline_run",
        "schedule": schedule.name,
        "pipeline": schedule.pipeline,
        "status": outcome.status,
        "run_id": outcome.run_id,
        "job_id": outcome.job_id,
        "slot": outcome.slot,
        "started": outcome.started,
        "finished": outcome.finished,
        "failed_step": outcome.failed_step,
        "error": (outcome.error or "")[:MAX_ERROR] or None,
        "params": schedule.params,
        "aidevops": __version__,
    }


def slack_payload(schedule: Schedule, outcome: Outcome) -> dict[str, Any]:
    """Slack's `text` (what notifications and clients without attachments show) plus the fields."""
    ok = outcome.status == SUCCEEDED
    text = (
        f"{':white_check_mark:' if ok else ':x:'} aidevops: pipeline *{schedule.pipeline}* "
        f"(schedule {schedule.name}) {outcome.status}"
        + (f", run {outcome.run_id}" if outcome.run_id else "")
        + (f"; step *{outcome.failed_step}* failed" if outcome.failed_step else "")
        + "."
    )
    fields = [
        ("Pipeline", schedule.pipeline),
        ("Schedule", f"{schedule.name} ({schedule.cron})"),
        ("Status", outcome.status),
        ("Run", outcome.run_id),
        ("Started", outcome.started),
        ("Finished", outcome.finished),
        ("Failed step", outcome.failed_step),
        ("Error", (outcome.error or "")[:MAX_ERROR] or None),
    ]
    return {
        "text": text,
        "attachments": [
            {
                "color": "good" if ok else "danger",
                "fallback": text,
                "fields": [{"title": k, "value": v, "short": k not in ("Error",)} for k, v in fields if v],
            }
        ],
    }


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A webhook answers where it was asked: a redirect is a failure, not a second request elsewhere."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def send(schedule: Schedule, outcome: Outcome, timeout: float = TIMEOUT_S) -> str | None:
    """POST the outcome to the schedule's webhook; None when it took it, else one sentence saying why not."""
    if not schedule.notify:
        return None
    body = slack_payload(schedule, outcome) if schedule.uses_slack() else payload(schedule, outcome)
    request = urllib.request.Request(
        schedule.notify,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": f"aidevops/{__version__}"},
    )
    host = url_host(schedule.notify)
    try:
        with _opener.open(request, timeout=timeout) as response:
            response.read(4096)
    except urllib.error.HTTPError as exc:
        return f"the webhook at {host} answered {exc.code} {exc.reason}; the run's outcome is recorded all the same."
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        return (
            f"the webhook at {host} could not be reached ({str(reason)[:120]}); "
            "the run's outcome is recorded all the same."
        )
    return None
