"""Cron expressions: checked, and turned into slots (the moments a schedule is due), all in UTC.

Parsing is croniter's; what is accepted is the five-field form cron, systemd users and Argo's CronWorkflow
share (`*/15 * * * *`), or one of the `@hourly`-style names: croniter's extra seconds and year fields would
not survive an export to Argo.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from croniter import CroniterBadCronError, CroniterBadDateError, CroniterError, croniter

from ..errors import ConfigError

NAMED = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
EXAMPLE = "'0 3 * * *' (03:00 UTC every day) or '*/15 * * * *'"


def utc(moment: datetime) -> datetime:
    """`moment` as an aware UTC datetime (a naive one is taken to be UTC)."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def check_cron(expr: object) -> str:
    """The expression with its whitespace normalised, or one sentence saying what is wrong with it."""
    if not isinstance(expr, str) or not expr.strip():
        raise ConfigError(f"--cron needs a cron expression, e.g. {EXAMPLE}.")
    text = " ".join(expr.split())
    if len(text) > 200:
        raise ConfigError(f"cron expression '{text[:40]}...' is too long; write five fields, e.g. {EXAMPLE}.")
    if text.startswith("@") and text.lower() not in NAMED:
        raise ConfigError(f"cron expression '{text}' is not one of {', '.join(NAMED)}; or write five fields.")
    if not text.startswith("@") and len(text.split()) != 5:
        raise ConfigError(
            f"cron expression '{text}' has {len(text.split())} fields, not 5 (minute hour day month weekday); "
            f"write e.g. {EXAMPLE}."
        )
    try:
        croniter(text, datetime(2000, 1, 1, tzinfo=timezone.utc)).get_next(datetime)
    except CroniterBadDateError:
        raise ConfigError(f"cron expression '{text}' never comes due (no such date); fix the day or month.") from None
    except (CroniterBadCronError, CroniterError, ValueError, KeyError) as exc:
        reason = str(exc).split("]")[-1].replace("is not acceptable,", "").strip(" ,.") or "it cannot be parsed"
        raise ConfigError(f"cron expression '{text}' is not valid ({reason}); write e.g. {EXAMPLE}.") from None
    return text


def next_slot(expr: str, after: datetime) -> datetime:
    """The first slot strictly after `after`."""
    return utc(croniter(expr, utc(after)).get_next(datetime))


def latest_slot(expr: str, now: datetime) -> datetime:
    """The last slot at or before `now`."""
    # croniter's get_prev is strictly before its start: start one second past `now` (slots are whole minutes).
    start = utc(now).replace(microsecond=0) + timedelta(seconds=1)
    return utc(croniter(expr, start).get_prev(datetime))


def due_slot(expr: str, since: datetime, now: datetime) -> datetime | None:
    """The newest slot after `since` and at or before `now`, or None.

    Only the newest: a scheduler that was down for a week runs a missed daily schedule once, not seven times.
    """
    slot = latest_slot(expr, now)
    return slot if slot > utc(since) else None
