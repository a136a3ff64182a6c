"""Schedules on a fake clock: what is due when, no slot run twice (not even by two schedulers at once), missed
slots run once, bad input refused in one sentence with nothing written, and the webhook's JSON as a real
receiver on 127.0.0.1 gets it, where a failing webhook never changes the run's outcome.

No pipeline runs here: a fake launcher stands for the background job (tests/integration/test_schedule_runs.py
runs real ones)."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner

from aidevops_ext.cli import main
from aidevops_ext.errors import ConfigError
from aidevops_ext.schedules import scheduler, store
from aidevops_ext.schedules.cron import check_cron, due_slot, latest_slot, next_slot
from aidevops_ext.schedules.notify import Outcome
from aidevops_ext.schedules.store import ScheduleStore, listing
from aidevops_ext.workspace import Workspace
from tests.support.projects import one_step_pipeline
from tests.support.webhooks import receivers


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


DAY1 = at("2026-12-01T12:00:00")


@pytest.fixture
def ws(tmp_path, clean_env):
    root = one_step_pipeline(tmp_path / "proj", "nightly", "one", "print(epochs)", params={"epochs": 2, "lr": 0.1})
    clean_env.setenv("AIDEVOPS_HOME", str(root))
    return Workspace(root)


class FakeLauncher:
    """Starts nothing; each job ends when the test says (`finish`)."""

    def __init__(self, fail_start: str | None = None, delay: float = 0.0):
        self.started: list[tuple[str, dict]] = []
        self.ended: dict[str, Outcome] = {}
        self.fail_start = fail_start
        self.delay = delay
        self.lock = threading.Lock()

    def start(self, ws, schedule):
        if self.fail_start:
            raise ConfigError(self.fail_start)
        time.sleep(self.delay)  # widens the window two schedulers would both start in, were the claim unlocked
        with self.lock:
            self.started.append((schedule.name, dict(schedule.params)))
            return f"job{len(self.started)}"

    def finish(self, job_id: str, status: str = "succeeded", **fields) -> None:
        self.ended[job_id] = Outcome(status=status, job_id=job_id, run_id=f"run-of-{job_id}", **fields)

    def poll(self, ws, job_id):
        return self.ended.get(job_id)


def quiet(_: str) -> None:
    pass


def run(ws, now, launcher, **kw):
    return scheduler.tick(ws, now, launcher=launcher, log=quiet, **kw)


# -- cron --------------------------------------------------------------------------------------------------


def test_slots_come_from_the_cron_expression_in_utc():
    assert next_slot("0 3 * * *", at("2026-12-01T02:59:59")) == at("2026-12-01T03:00:00")
    assert next_slot("0 3 * * *", at("2026-12-01T03:00:00")) == at("2026-12-02T03:00:00")
    assert latest_slot("0 3 * * *", at("2026-12-01T03:00:00")) == at("2026-12-01T03:00:00")  # at the slot: due
    assert latest_slot("*/15 * * * *", at("2026-12-01T03:29:59")) == at("2026-12-01T03:15:00")
    assert next_slot("@hourly", at("2026-12-01T03:10:00")) == at("2026-12-01T04:00:00")


def test_only_the_newest_missed_slot_is_due():
    since = at("2026-12-01T03:00:00")
    assert due_slot("0 3 * * *", since, at("2026-12-05T09:00:00")) == at("2026-12-05T03:00:00")
    assert due_slot("0 3 * * *", since, at("2026-12-02T02:59:00")) is None


@pytest.mark.parametrize(
    ("expr", "needle"),
    [
        ("61 * * * *", "is not valid (out of range)"),
        ("* * * *", "has 4 fields, not 5"),
        ("0 0 * * * *", "has 6 fields, not 5"),
        ("0 0 30 2 *", "never comes due"),
        ("@reboot", "is not one of @yearly"),
        ("every day", "has 2 fields"),
        ("", "needs a cron expression"),
    ],
)
def test_a_bad_cron_expression_is_one_sentence(expr, needle):
    with pytest.raises(ConfigError) as refused:
        check_cron(expr)
    message = str(refused.value)
    assert needle in message and message.endswith(".") and "\n" not in message


# -- the CLI: refusals write nothing; list and remove -----------------------------------------------------


def cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--cron", "61 * * * *"], "cron expression '61 * * * *' is not valid"),
        (["--cron", "0 3 * *"], "has 4 fields, not 5"),
        (["--cron", "@daily", "-p", "epochs=many"], "parameter 'epochs' expects an integer"),
        (["--cron", "@daily", "-p", "batch=3"], "unknown parameter 'batch'"),
        (["--cron", "@daily", "--notify", "file:///etc/passwd"], "is not an http:// or https:// URL"),
        (["--cron", "@daily", "--notify", "https://"], "is not an http:// or https:// URL"),
        (["--cron", "@daily", "--name", "../x"], "schedule name '../x' is not valid"),
    ],
)
def test_bad_input_is_one_sentence_a_non_zero_exit_and_nothing_written(ws, args, needle):
    result = CliRunner().invoke(main, ["schedule", "add", "nightly", *args])
    assert result.exit_code == 2, result.output
    assert needle in result.output and result.output.count("error:") == 1
    assert not (ws.state / "schedules.json").exists()


def test_an_unknown_pipeline_is_refused_naming_the_ones_there_are(ws):
    result = CliRunner().invoke(main, ["schedule", "add", "weekly", "--cron", "@daily"])
    assert result.exit_code == 2 and "'weekly' not found (available: nightly)" in result.output
    assert not (ws.state / "schedules.json").exists()


def test_list_shows_next_run_and_the_webhooks_host_only_and_remove_removes(ws):
    secret = "https://hooks.slack.com/services/T1/B2/very-secret"
    assert "schedule 'nightly' runs 'nightly'" in cli("schedule", "add", "nightly", "--cron", "0 3 * * *").output
    added = cli(
        "schedule", "add", "nightly", "--cron", "*/5 * * * *", "-p", "epochs=7", "--notify", secret, "--name", "fast"
    )
    assert "webhook to hooks.slack.com" in added.output and "very-secret" not in added.output
    again = CliRunner().invoke(main, ["schedule", "add", "nightly", "--cron", "@daily"])
    assert again.exit_code == 2 and "a schedule named 'nightly' exists" in again.output

    rows = json.loads(cli("schedule", "list", "--json").output)["schedules"]
    assert [(r["name"], r["cron"], r["params"], r["notify"]) for r in rows] == [
        ("fast", "*/5 * * * *", {"epochs": 7}, "hooks.slack.com"),
        ("nightly", "0 3 * * *", {}, None),
    ]
    assert all(r["next_run"].endswith("Z") and r["last_run"] is None for r in rows)
    table = cli("schedule", "list").output
    assert "fast" in table and "epochs=7" in table and "very-secret" not in table
    assert (ws.state / "schedules.json").stat().st_mode & 0o077 == 0  # the file holds the secret URL

    assert cli("schedule", "remove", "fast").output == "schedule 'fast' removed.\n"
    gone = CliRunner().invoke(main, ["schedule", "remove", "fast"])
    assert gone.exit_code == 2 and "there is no schedule 'fast'" in gone.output
    assert [r["name"] for r in listing(ws)] == ["nightly"]


def test_the_number_of_schedules_is_bounded(ws, monkeypatch):
    monkeypatch.setattr(store, "MAX_SCHEDULES", 3)
    for i in range(3):
        ScheduleStore(ws).add("nightly", "@daily", name=f"s{i}")
    with pytest.raises(ConfigError, match="has 3 schedules, the most it keeps"):
        ScheduleStore(ws).add("nightly", "@daily", name="s3")
    assert len(ScheduleStore(ws).load()) == 3


# -- the scheduler on a fake clock --------------------------------------------------------------------------


def test_a_schedule_fires_at_its_slot_once_and_records_how_the_run_ended(ws):
    ScheduleStore(ws).add("nightly", "0 3 * * *", params={"epochs": 5}, now=DAY1)
    fake = FakeLauncher()
    assert run(ws, at("2026-12-02T02:59:59"), fake).started == []
    assert run(ws, at("2026-12-02T03:00:05"), fake).started == ["nightly"]
    assert fake.started == [("nightly", {"epochs": 5})]
    assert run(ws, at("2026-12-02T03:00:50"), fake).running == ["nightly"]  # same slot: not again
    fake.finish("job1")
    report = run(ws, at("2026-12-02T03:01:00"), fake)
    assert [(name, o.status, o.run_id, o.slot) for name, o in report.finished] == [
        ("nightly", "succeeded", "run-of-job1", "2026-12-02T03:00:00Z")
    ]
    (row,) = listing(ws, at("2026-12-02T03:01:00"))
    assert row["last_run"] == "2026-12-02T03:00:05Z" and row["last_status"] == "succeeded"
    assert row["last_run_id"] == "run-of-job1" and row["next_run"] == "2026-12-03T03:00:00Z"
    assert run(ws, at("2026-12-02T23:00:00"), fake).started == [] and len(fake.started) == 1
    assert run(ws, at("2026-12-03T03:00:00"), fake).started == ["nightly"]


def test_a_tick_with_nothing_due_leaves_the_file_alone(ws):
    ScheduleStore(ws).add("nightly", "0 3 * * *", now=DAY1)
    path = ws.state / "schedules.json"
    before = (path.read_bytes(), path.stat().st_ino)
    run(ws, at("2026-12-01T20:00:00"), FakeLauncher())
    assert (path.read_bytes(), path.stat().st_ino) == before  # not even rewritten with the same bytes


def test_a_scheduler_down_for_days_runs_the_missed_slots_once(ws):
    ScheduleStore(ws).add("nightly", "0 3 * * *", now=DAY1)
    fake = FakeLauncher()
    run(ws, at("2026-12-06T10:00:00"), fake)
    fake.finish("job1")
    run(ws, at("2026-12-06T10:00:30"), fake)
    run(ws, at("2026-12-06T10:01:00"), fake)
    assert len(fake.started) == 1
    assert ScheduleStore(ws).get("nightly").last_slot == at("2026-12-06T03:00:00")


def test_a_slot_due_while_the_previous_run_is_going_is_skipped_not_queued(ws):
    ScheduleStore(ws).add("nightly", "*/5 * * * *", now=DAY1)
    fake = FakeLauncher()
    run(ws, at("2026-12-01T12:05:00"), fake)
    assert run(ws, at("2026-12-01T12:10:00"), fake).skipped == ["nightly"]
    fake.finish("job1")
    assert run(ws, at("2026-12-01T12:12:00"), fake).started == []  # the 12:10 slot is gone, not made up later
    assert run(ws, at("2026-12-01T12:15:00"), fake).started == ["nightly"]


def test_two_schedulers_at_once_start_a_slot_once(ws):
    ScheduleStore(ws).add("nightly", "0 3 * * *", now=DAY1)
    fake = FakeLauncher(delay=0.2)
    barrier = threading.Barrier(4)

    def scheduler_process():
        barrier.wait()
        run(ws, at("2026-12-02T03:00:01"), fake)

    threads = [threading.Thread(target=scheduler_process) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert fake.started == [("nightly", {})]


def test_a_run_that_cannot_start_is_a_failure_with_its_sentence(ws):
    ScheduleStore(ws).add("nightly", "0 3 * * *", now=DAY1)
    report = run(ws, at("2026-12-02T03:00:00"), FakeLauncher(fail_start="pipeline spec 'nightly' not found."))
    ((name, outcome),) = report.finished
    assert outcome.status == "failed" and outcome.error == "pipeline spec 'nightly' not found."
    saved = ScheduleStore(ws).get("nightly")
    assert (saved.last_status, saved.last_error, saved.job_id) == ("failed", outcome.error, None)


def test_run_due_waits_for_the_runs_it_started(ws):
    ScheduleStore(ws).add("nightly", "0 3 * * *", now=DAY1)
    fake = FakeLauncher()
    threading.Timer(0.3, fake.finish, ("job1", "failed"), {"failed_step": "one", "error": "boom"}).start()
    report = scheduler.run_due(ws, at("2026-12-02T03:00:00"), launcher=fake, log=quiet, poll_s=0.05)
    assert report.started == ["nightly"]
    assert [(o.status, o.failed_step) for _, o in report.finished] == [("failed", "one")]


def test_serve_runs_what_is_due_and_stops_when_told(ws):
    ScheduleStore(ws).add("nightly", "* * * * *", now=datetime.now(timezone.utc) - timedelta(minutes=3))
    fake = FakeLauncher()
    stop = threading.Event()
    thread = threading.Thread(target=scheduler.serve, args=(ws, stop), kwargs={"launcher": fake, "log": quiet})
    thread.start()
    deadline = time.monotonic() + 20
    while not fake.started and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    thread.join(10)
    assert not thread.is_alive() and fake.started == [("nightly", {})]


# -- webhooks: a real receiver on 127.0.0.1 ---------------------------------------------------------------


@pytest.fixture
def receiver():
    with receivers() as make:
        yield make


def _fire_and_finish(ws, fake, status="succeeded", **fields):
    run(ws, at("2026-12-02T03:00:02"), fake)
    fake.finish("job1", status, started="2026-12-02T03:00:03Z", finished="2026-12-02T03:00:09Z", **fields)
    return run(ws, at("2026-12-02T03:00:30"), fake)


def test_the_generic_webhook_gets_the_runs_json(ws, receiver):
    hook = receiver()
    ScheduleStore(ws).add("nightly", "0 3 * * *", params={"lr": 0.5}, notify=hook.url, now=DAY1)
    _fire_and_finish(ws, FakeLauncher(), "failed", failed_step="one", error="ZeroDivisionError: division by zero")
    ((path, ctype, body),) = hook.received
    assert path == "/hook/secret-path" and ctype == "application/json"
    assert body == {
        "event": "pipeline_run",
        "schedule": "nightly",
        "pipeline": "nightly",
        "status": "failed",
        "run_id": "run-of-job1",
        "job_id": "job1",
        "slot": "2026-12-02T03:00:00Z",
        "started": "2026-12-02T03:00:03Z",
        "finished": "2026-12-02T03:00:09Z",
        "failed_step": "one",
        "error": "ZeroDivisionError: division by zero",
        "params": {"lr": 0.5},
        "aidevops": body["aidevops"],
    }
    assert ScheduleStore(ws).get("nightly").notify_error is None


def test_the_slack_format_is_text_plus_fields(ws, receiver):
    hook = receiver()
    ScheduleStore(ws).add("nightly", "0 3 * * *", notify=hook.url, notify_format="slack", now=DAY1)
    _fire_and_finish(ws, FakeLauncher())
    ((_, _, body),) = hook.received
    assert set(body) == {"text", "attachments"}
    assert "pipeline *nightly*" in body["text"] and "succeeded" in body["text"] and "run-of-job1" in body["text"]
    fields = {f["title"]: f["value"] for f in body["attachments"][0]["fields"]}
    assert fields["Run"] == "run-of-job1" and fields["Status"] == "succeeded" and "Failed step" not in fields
    assert body["attachments"][0]["color"] == "good"


@pytest.mark.parametrize("failure", ["refused", "500"])
def test_a_failing_webhook_is_one_sentence_and_never_fails_the_run(ws, receiver, failure):
    if failure == "500":
        hook = receiver(500)
        url, needle = hook.url, "answered 500"
    else:
        closed = receiver()
        url = closed.url
        closed.close()  # nothing listens there any more: connection refused
        needle = "could not be reached"
    ScheduleStore(ws).add("nightly", "0 3 * * *", notify=url, now=DAY1)
    logged = []
    fake = FakeLauncher()
    scheduler.tick(ws, at("2026-12-02T03:00:02"), launcher=fake, log=logged.append)
    fake.finish("job1")
    report = scheduler.tick(ws, at("2026-12-02T03:00:30"), launcher=fake, log=logged.append)
    assert [o.status for _, o in report.finished] == ["succeeded"]
    saved = ScheduleStore(ws).get("nightly")
    assert saved.last_status == "succeeded" and saved.last_run_id == "run-of-job1"
    assert needle in saved.notify_error and "secret-path" not in saved.notify_error
    (sentence,) = [line for line in logged if "webhook" in line]
    assert needle in sentence and sentence.endswith(".") and "\n" not in sentence
    if failure == "500":
        assert len(hook.received) == 1
