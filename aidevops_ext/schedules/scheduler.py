"""Running due schedules: claim the slot, start the pipeline as a background job, record and announce its end.

A tick, under the store's lock (store.py): for each schedule whose run is going, ask whether it ended and
record how; for each schedule with a due slot (cron.py: the newest one not yet taken, so missed slots run
once, not as a backlog), mark the slot taken and start the run the way the Runs panel does (jobs.start_run:
its own process, its own log, in the panel's job list). A slot that comes due while the previous run is still
going is skipped, as Argo's `concurrencyPolicy: Forbid` does. Webhooks are sent after the lock is released.

`run_due` is one tick that waits for the runs it started (what cron or a systemd timer calls); `serve` ticks at
every minute, and every few seconds while a run is going so its webhook is not late (`aidevops schedule serve`,
and the thread the Jupyter server extension starts, background.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Protocol

from ..errors import AidevopsError
from ..workspace import Workspace
from .cron import due_slot, utc
from .model import FAILED, RUNNING, SUCCEEDED, Schedule, iso
from .notify import Outcome, send
from .store import ScheduleStore

Log = Callable[[str], None]
REAP_EVERY_S = 2.0  # how soon a finished run is recorded and announced while `serve` runs


class Launcher(Protocol):
    """How a due schedule's run is started and followed (tests pass a fake one)."""

    def start(self, ws: Workspace, schedule: Schedule) -> str:
        """Start the run; returns a job id (raises AidevopsError when it cannot start)."""

    def poll(self, ws: Workspace, job_id: str) -> Outcome | None:
        """None while the job runs, then how it ended."""


class JobLauncher:
    """Runs as background jobs (aidevops_ext/jobs.py), the way the Runs panel starts a run."""

    def start(self, ws: Workspace, schedule: Schedule) -> str:
        from .. import jobs  # noqa: PLC0415

        return jobs.start_run(ws, schedule.pipeline, schedule.params).id

    def poll(self, ws: Workspace, job_id: str) -> Outcome | None:
        from .. import jobs  # noqa: PLC0415
        from ..pipeline.records import run_by_id  # noqa: PLC0415

        job = jobs.get(ws, job_id)
        if job.status == jobs.RUNNING:
            return None
        record = run_by_id(ws, job.run_id) or {}
        failed = next(((n, s) for n, s in (record.get("steps") or {}).items() if s.get("status") == "failed"), None)
        status = SUCCEEDED if job.status == jobs.SUCCEEDED else FAILED
        error = (failed[1].get("error") if failed else None) or (job.message if status == FAILED else None)
        return Outcome(
            status=status,
            run_id=job.run_id,
            job_id=job.id,
            started=_iso_text(record.get("started")) or iso(datetime.fromtimestamp(job.started, timezone.utc)),
            finished=_iso_text(record.get("finished"))
            or (iso(datetime.fromtimestamp(job.finished, timezone.utc)) if job.finished else None),
            failed_step=failed[0] if failed else None,
            error=error or None,
        )


def _iso_text(value: object) -> str | None:
    try:
        return iso(datetime.fromisoformat(str(value))) if value else None
    except ValueError:
        return None


@dataclass
class TickReport:
    """What one tick did."""

    started: list[str] = field(default_factory=list)  # schedules whose run started
    finished: list[tuple[str, Outcome]] = field(default_factory=list)  # runs that ended (or could not start)
    skipped: list[str] = field(default_factory=list)  # due while their previous run was still going
    running: list[str] = field(default_factory=list)  # schedules with a run going after the tick


def _print(message: str) -> None:
    print(message, flush=True)


def tick(
    ws: Workspace,
    now: datetime | None = None,
    *,
    launcher: Launcher | None = None,
    log: Log = _print,
    fire: bool = True,
) -> TickReport:
    """Record runs that ended, start what is due at `now` (not when `fire` is False), send the webhooks."""
    store = ScheduleStore(ws)
    report = TickReport()
    if not store.exists():
        return report  # a workspace without schedules: one stat per tick, nothing imported, nothing written
    now = utc(now or datetime.now(timezone.utc))
    launcher = launcher or JobLauncher()
    to_send: list[tuple[Schedule, Outcome]] = []
    with store.editing() as schedules:
        for schedule in schedules:
            if schedule.last_status == RUNNING and schedule.job_id:
                outcome = _poll(launcher, ws, schedule)
                if outcome is not None:
                    _record_end(schedule, outcome)
                    report.finished.append((schedule.name, outcome))
                    to_send.append((schedule.model_copy(), outcome))
                    log(_ended(schedule, outcome))
            slot = due_slot(schedule.cron, schedule.since(), now) if fire else None
            if slot is not None:
                schedule.last_slot = slot
                if schedule.last_status == RUNNING:
                    report.skipped.append(schedule.name)
                    log(
                        f"schedule '{schedule.name}': skipped the {iso(slot)} slot; its run of the "
                        f"{iso(schedule.run_slot)} slot is still going."
                    )
                else:
                    _start(launcher, ws, schedule, slot, now, report, to_send, log)
            if schedule.last_status == RUNNING:
                report.running.append(schedule.name)
    _notify(store, to_send, log)
    return report


def _poll(launcher: Launcher, ws: Workspace, schedule: Schedule) -> Outcome | None:
    try:
        return launcher.poll(ws, schedule.job_id or "")
    except AidevopsError as exc:  # the job's record is gone or damaged: the run's end cannot be known
        return Outcome(status=FAILED, job_id=schedule.job_id, error=str(exc))


def _start(
    launcher: Launcher,
    ws: Workspace,
    schedule: Schedule,
    slot: datetime,
    now: datetime,
    report: TickReport,
    to_send: list[tuple[Schedule, Outcome]],
    log: Log,
) -> None:
    schedule.run_slot, schedule.last_run, schedule.last_run_id = slot, now, None
    try:
        job_id = launcher.start(ws, schedule)
    except AidevopsError as exc:  # the spec was removed or its params changed since the schedule was added
        outcome = Outcome(status=FAILED, slot=iso(slot), started=iso(now), finished=iso(now), error=str(exc))
        _record_end(schedule, outcome)
        report.finished.append((schedule.name, outcome))
        to_send.append((schedule.model_copy(), outcome))
        log(f"schedule '{schedule.name}': the {iso(slot)} run of '{schedule.pipeline}' could not start: {exc}")
        return
    schedule.job_id, schedule.last_status, schedule.last_error = job_id, RUNNING, None
    report.started.append(schedule.name)
    log(f"schedule '{schedule.name}': started pipeline '{schedule.pipeline}' for the {iso(slot)} slot (job {job_id}).")


def _record_end(schedule: Schedule, outcome: Outcome) -> None:
    outcome.slot = outcome.slot or iso(schedule.run_slot)
    schedule.last_status = outcome.status
    schedule.last_run_id = outcome.run_id
    schedule.last_error = outcome.error
    schedule.job_id = None


def _ended(schedule: Schedule, outcome: Outcome) -> str:
    run = f"run {outcome.run_id}" if outcome.run_id else "its run"
    where = f" at step '{outcome.failed_step}'" if outcome.failed_step else ""
    return f"schedule '{schedule.name}': {run} of '{schedule.pipeline}' {outcome.status}{where}."


def _notify(store: ScheduleStore, to_send: list[tuple[Schedule, Outcome]], log: Log) -> None:
    """Send the webhooks (no lock held: a slow receiver delays nobody), then note each one's result."""
    results = {}
    for schedule, outcome in to_send:
        if schedule.notify:
            problem = send(schedule, outcome)
            results[schedule.name] = problem
            if problem:
                log(f"schedule '{schedule.name}': {problem}")
    if results:
        with store.editing() as schedules:
            for schedule in schedules:
                if schedule.name in results:
                    schedule.notify_error = results[schedule.name]


def run_due(
    ws: Workspace,
    now: datetime | None = None,
    *,
    wait: bool = True,
    launcher: Launcher | None = None,
    log: Log = _print,
    poll_s: float = 1.0,
) -> TickReport:
    """Start what is due at `now`, then (with `wait`) follow the runs started until each has ended."""
    report = tick(ws, now, launcher=launcher, log=log)
    pending = set(report.started) if wait else set()
    while pending:
        time.sleep(poll_s)
        later = tick(ws, launcher=launcher, log=log, fire=False)
        report.finished += later.finished
        known = {s.name for s in ScheduleStore(ws).load()}
        pending = {name for name in pending if name in later.running and name in known}
    report.running = [] if wait else report.running
    return report


def serve(
    ws: Workspace,
    stop: threading.Event,
    *,
    launcher: Launcher | None = None,
    log: Log = _print,
) -> None:
    """Tick at each minute until `stop` is set; a tick's error is logged, and the next minute tries again."""
    while not stop.is_set():
        running = False
        try:
            running = bool(tick(ws, launcher=launcher, log=log).running)
        except AidevopsError as exc:
            log(f"scheduler: {exc}")
        except Exception as exc:  # noqa: BLE001 - a scheduler that dies on one bad tick runs nothing again
            log(f"scheduler: a tick failed ({type(exc).__name__}: {exc}); trying again at the next minute.")
        to_minute = 60.0 - (time.time() % 60.0) + 0.05  # just past the minute, where the cron slots are
        stop.wait(min(to_minute, REAP_EVERY_S) if running else to_minute)
