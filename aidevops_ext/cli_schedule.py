"""`aidevops schedule`: add, list, remove and run pipeline schedules (parsing and printing only).

Registered on the main group by `aidevops_ext/cli.py`; the core lives in `aidevops_ext/schedules/`.
"""

from __future__ import annotations

import json
import signal
from datetime import datetime

import click

from .cli_options import echo_json_or_none_yet, param_option
from .tables import table


def _workspace():
    from .workspace import Workspace

    return Workspace.discover()


def _moment(text: str | None) -> datetime | None:
    from .errors import ConfigError
    from .schedules.cron import utc

    if text is None:
        return None
    try:
        return utc(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        raise ConfigError(f"--now {text!r} is not an ISO 8601 time; write e.g. 2026-12-06T03:00:00Z.") from None


@click.group()
def schedule() -> None:
    """Run pipelines on a cron schedule (times in UTC), with a webhook after every run.

    While JupyterLab runs, its server runs due schedules; otherwise run `aidevops schedule serve`, or call
    `aidevops schedule run-due` from cron or a systemd timer every minute.
    """


@schedule.command("add")
@click.argument("pipeline")
@click.option("--cron", required=True, metavar="EXPR", help="Five cron fields in UTC, e.g. '0 3 * * *', or @daily.")
@param_option()
@click.option("--notify", metavar="URL", default=None, help="POST JSON to this http(s) URL after every run.")
@click.option(
    "--notify-format",
    type=click.Choice(["auto", "slack", "json"]),
    default="auto",
    show_default=True,
    help="slack: Slack-compatible {text, attachments}; json: the generic object; auto: slack for hooks.slack.com.",
)
@click.option("--name", default=None, help="The schedule's name (default: the pipeline's).")
def add(pipeline, cron, params, notify, notify_format, name) -> None:
    """Run PIPELINE whenever CRON comes due."""
    from datetime import timezone

    from .pipeline.params import parse_assignments
    from .schedules.cron import next_slot
    from .schedules.model import iso, url_host
    from .schedules.store import ScheduleStore

    added = ScheduleStore(_workspace()).add(
        pipeline, cron, params=parse_assignments(params), notify=notify, notify_format=notify_format, name=name
    )
    first = iso(next_slot(added.cron, datetime.now(timezone.utc)))
    to = f"; webhook to {url_host(added.notify)}" if added.notify else ""
    click.echo(f"schedule '{added.name}' runs '{added.pipeline}' at '{added.cron}' (UTC), first at {first}{to}.")


@schedule.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def list_(as_json) -> None:
    """Schedules with their next and last run (webhooks by host only: a Slack URL is a secret)."""
    from .schedules.store import listing

    rows = listing(_workspace())
    none_yet = "no schedules; add one with: aidevops schedule add PIPELINE --cron '0 3 * * *'"
    if echo_json_or_none_yet(rows, as_json, none_yet, payload={"schedules": rows}):
        return
    body = [
        [
            r["name"],
            r["pipeline"],
            r["cron"],
            r["next_run"],
            r["last_run"] or "-",
            r["last_status"] or "-",
            r["last_run_id"] or "-",
            r["notify"] or "-",
            " ".join(f"{k}={json.dumps(v)}" for k, v in r["params"].items()) or "-",
        ]
        for r in rows
    ]
    headers = ["NAME", "PIPELINE", "CRON", "NEXT RUN", "LAST RUN", "STATUS", "RUN", "WEBHOOK", "PARAMS"]
    for line in table(body, headers):
        click.echo(line)


@schedule.command("remove")
@click.argument("name")
def remove(name) -> None:
    """Remove a schedule (its past runs stay)."""
    from .schedules.store import ScheduleStore

    gone = ScheduleStore(_workspace()).remove(name)
    click.echo(f"schedule '{gone.name}' removed.")


@schedule.command("run-due")
@click.option("--now", default=None, metavar="ISO", help="Take this time as now (UTC unless it says otherwise).")
@click.option("--no-wait", is_flag=True, help="Start what is due and exit; the next call records how the runs ended.")
def run_due(now, no_wait) -> None:
    """Run what is due once, wait for those runs, and exit: for cron or a systemd timer, every minute.

    Exits 1 when a run it waited for failed.
    """
    import sys

    from .schedules.scheduler import run_due as run

    report = run(_workspace(), _moment(now), wait=not no_wait)
    if not (report.started or report.finished or report.skipped):
        click.echo("nothing is due.")
    if any(outcome.status != "succeeded" for _, outcome in report.finished):
        sys.exit(1)


@schedule.command("serve")
def serve() -> None:
    """Run due schedules in the foreground, checking every minute, until Ctrl-C or SIGTERM.

    Not needed while JupyterLab runs on this workspace: its server runs the schedules itself.
    """
    import threading

    from .schedules.scheduler import serve as run

    ws = _workspace()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):  # a tick in progress ends whole: its claim is written
        signal.signal(signum, lambda *_: stop.set())
    click.echo(f"scheduler running for {ws.root} (Ctrl-C to stop)")
    run(ws, stop)
    click.echo("scheduler stopped; runs still going finish on their own and the next scheduler records them.")


COMMANDS = (schedule,)
