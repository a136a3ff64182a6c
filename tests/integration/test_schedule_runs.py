"""Scheduled runs for real: `aidevops schedule run-due` and `schedule serve` start a one-step pipeline as a
background job, record how it ended, and POST the outcome to a webhook receiver on 127.0.0.1. A failing step
fails the run (exit 1) and names the step in the webhook; a failing webhook only costs one sentence."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from aidevops_ext.schedules.cron import next_slot
from aidevops_ext.schedules.model import iso
from aidevops_ext.schedules.store import ScheduleStore
from aidevops_ext.workspace import Workspace
from tests.support.cli import AIDEVOPS, cli_env, run_cli
from tests.support.projects import one_step_pipeline
from tests.support.webhooks import receivers


@pytest.fixture
def receiver():
    with receivers() as make:
        yield make


@pytest.fixture
def project(tmp_path, clean_env):
    """Two one-step pipelines: `tiny` succeeds, `broken` fails in its step."""
    root = one_step_pipeline(tmp_path / "proj", "tiny", "hello", "print('hello', n)", params={"n": 1})
    one_step_pipeline(root, "broken", "boom", "1 / 0")
    clean_env.setenv("AIDEVOPS_HOME", str(root))
    return root


def cli(root: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return run_cli(*args, cwd=root, env={"AIDEVOPS_HOME": str(root)}, timeout=timeout)


def runs_of(root: Path, pipeline: str) -> list[dict]:
    folder = root / ".aidevops" / "runs" / pipeline
    return [json.loads(f.read_text()) for f in sorted(folder.glob("*/run.json"))] if folder.is_dir() else []


def test_run_due_runs_the_due_pipeline_once_and_posts_its_outcome(project, receiver):
    hook = receiver()
    added = cli(project, "schedule", "add", "tiny", "--cron", "0 3 * * *", "-p", "n=4", "--notify", hook.url)
    assert added.returncode == 0, added.stderr
    slot = iso(next_slot("0 3 * * *", datetime.now(timezone.utc)))
    now = slot.replace(":00Z", ":30Z")

    first = cli(project, "schedule", "run-due", "--now", now)
    assert first.returncode == 0, first.stdout + first.stderr
    (run,) = runs_of(project, "tiny")
    assert run["status"] == "succeeded" and run["overrides"] == {"n": 4}
    assert f"run {run['run_id']} of 'tiny' succeeded" in first.stdout
    (body,) = hook.bodies
    assert (body["schedule"], body["pipeline"], body["status"], body["run_id"]) == (
        "tiny",
        "tiny",
        "succeeded",
        run["run_id"],
    )
    assert body["slot"] == slot and body["failed_step"] is None and body["error"] is None
    assert body["started"] <= body["finished"]

    again = cli(project, "schedule", "run-due", "--now", now)
    assert again.returncode == 0 and again.stdout == "nothing is due.\n"
    assert len(runs_of(project, "tiny")) == 1 and len(hook.bodies) == 1

    (row,) = json.loads(cli(project, "schedule", "list", "--json").stdout)["schedules"]
    assert (row["last_status"], row["last_run_id"], row["last_run"]) == ("succeeded", run["run_id"], now)


def test_a_failing_step_fails_the_run_and_a_failing_webhook_only_says_so(project, receiver):
    hook = receiver(500)
    assert cli(project, "schedule", "add", "broken", "--cron", "*/10 * * * *", "--notify", hook.url).returncode == 0
    now = iso(next_slot("*/10 * * * *", datetime.now(timezone.utc)))

    result = cli(project, "schedule", "run-due", "--now", now)
    assert result.returncode == 1, result.stdout + result.stderr
    (run,) = runs_of(project, "broken")
    assert run["status"] == "failed"
    assert f"run {run['run_id']} of 'broken' failed at step 'boom'" in result.stdout
    (sentence,) = [line for line in result.stdout.splitlines() if "webhook" in line]
    assert "answered 500" in sentence and "recorded all the same" in sentence
    (body,) = hook.bodies
    assert body["status"] == "failed" and body["failed_step"] == "boom" and "ZeroDivisionError" in body["error"]
    (row,) = json.loads(cli(project, "schedule", "list", "--json").stdout)["schedules"]
    assert (row["last_status"], row["last_run_id"]) == ("failed", run["run_id"])


def test_schedule_serve_runs_what_is_due_and_stops_on_sigterm(project, receiver):
    hook = receiver()
    # Added three minutes ago: the current minute's slot is due as soon as the scheduler starts.
    ScheduleStore(Workspace(project)).add(
        "tiny", "* * * * *", notify=hook.url, now=datetime.now(timezone.utc) - timedelta(minutes=3)
    )
    proc = subprocess.Popen(
        [*AIDEVOPS, "schedule", "serve"],
        cwd=project,
        env=cli_env(AIDEVOPS_HOME=str(project)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 180
        while not hook.bodies and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert hook.bodies and hook.bodies[0]["status"] == "succeeded", out
    assert hook.bodies[0]["run_id"] == runs_of(project, "tiny")[0]["run_id"]
    assert out.splitlines()[-1].startswith("scheduler stopped")
