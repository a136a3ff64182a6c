"""GET /aidevops/api/schedules in process, and the scheduler thread the server extension starts (once, and
only when not turned off). The Runs panel lists schedules from exactly this answer's shape."""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from aidevops_ext.schedules import background
from aidevops_ext.schedules.notify import Outcome
from aidevops_ext.schedules.scheduler import tick
from aidevops_ext.schedules.store import ScheduleStore
from aidevops_ext.workspace import Workspace
from tests.conftest import write_notebook

SLACK = "https://hooks.slack.com/services/T000/B000/s3cr3tpath"
SHAPE = {"name", "pipeline", "cron", "params", "notify", "next_run", "last_run", "last_status", "last_run_id"}


@pytest.fixture
def scheduler_off(clean_env):
    clean_env.setenv(background.ENV, "0")


@pytest.fixture
def jp_server_config(workspace, scheduler_off):
    (workspace / "pipelines" / "nightly.yaml").write_text(
        "name: nightly\nparams: {epochs: 2}\nsteps:\n  one:\n    notebook: one.ipynb\n"
    )
    write_notebook(workspace / "one.ipynb", "epochs = 2", "print(epochs)")
    return {"ServerApp": {"jpserver_extensions": {"aidevops_ext": True}}}


class _Finished:
    """A launcher whose runs start and have ended by the next look."""

    def start(self, ws, schedule):
        return "job1"

    def poll(self, ws, job_id):
        return Outcome(status="failed", run_id="20261206-030000-000-abcd", job_id=job_id, failed_step="one")


async def test_a_workspace_without_schedules_lists_none(api):
    assert await api("GET", "schedules") == (200, {"schedules": []})


async def test_schedules_list_next_and_last_run_and_only_the_webhooks_host(api, workspace):
    ws = Workspace(workspace)
    created = datetime(2026, 12, 5, 2, 0, tzinfo=timezone.utc)
    store = ScheduleStore(ws)
    store.add("nightly", "0 3 * * *", params={"epochs": 5}, notify=SLACK, name="nightly", now=created)
    store.add("nightly", "*/15 * * * *", name="often", now=created)
    tick(ws, datetime(2026, 12, 5, 3, 0, 20, tzinfo=timezone.utc), launcher=_Finished(), log=lambda _: None)
    tick(ws, datetime(2026, 12, 5, 3, 0, 40, tzinfo=timezone.utc), launcher=_Finished(), log=lambda _: None, fire=False)

    status, answer = await api("GET", "schedules")
    assert status == 200 and "s3cr3tpath" not in str(answer)
    nightly, often = answer["schedules"]
    assert set(nightly) == SHAPE and set(often) == SHAPE
    assert nightly == {
        "name": "nightly",
        "pipeline": "nightly",
        "cron": "0 3 * * *",
        "params": {"epochs": 5},
        "notify": "hooks.slack.com",
        "next_run": nightly["next_run"],
        "last_run": "2026-12-05T03:00:20Z",
        "last_status": "failed",
        "last_run_id": "20261206-030000-000-abcd",
    }
    next_run = datetime.fromisoformat(nightly["next_run"].replace("Z", "+00:00"))
    now = datetime.now(timezone.utc)
    assert next_run > now and next_run - now <= timedelta(days=1) and (next_run.hour, next_run.minute) == (3, 0)
    assert often["notify"] is None and often["last_run"] == "2026-12-05T03:00:20Z"


async def test_a_damaged_schedules_file_is_one_sentence_not_a_500(api, workspace):
    (workspace / ".aidevops").mkdir(exist_ok=True)
    (workspace / ".aidevops" / "schedules.json").write_text("{not json")
    status, answer = await api("GET", "schedules")
    assert status == 400 and "schedules.json is not readable JSON" in answer["error"]


def _scheduler_threads(root) -> list[threading.Thread]:
    """This workspace's scheduler threads (named by the full path: other tests' workspaces share folder names)."""
    name = f"aidevops-scheduler:{Workspace.discover(Path(root)).root}"
    return [t for t in threading.enumerate() if t.name == name and t.is_alive()]


async def test_the_scheduler_thread_is_off_when_the_env_var_says_so(api, workspace):
    await api("GET", "schedules")
    assert _scheduler_threads(workspace) == []


def test_the_scheduler_thread_starts_once_per_workspace(tmp_path, clean_env):
    clean_env.delenv(background.ENV, raising=False)
    (tmp_path / "pipelines").mkdir()
    try:
        assert background.start(tmp_path, lambda _: None) is True
        assert background.start(tmp_path, lambda _: None) is False
        assert len(_scheduler_threads(tmp_path)) == 1
        time.sleep(0.5)  # past the thread's first tick, which comes at once
        assert not (tmp_path / ".aidevops").exists()  # no schedules: nothing written
    finally:
        background.stop_all()
    assert _scheduler_threads(tmp_path) == []


def test_the_extension_starts_the_scheduler_unless_turned_off(tmp_path, clean_env):
    from traitlets.config import Config

    import aidevops_ext

    class Web:
        settings = {"base_url": "/"}

        def add_handlers(self, host, handlers):
            pass

    class App:
        root_dir = str(tmp_path)
        web_app = Web()
        log = logging.getLogger("test")

        def __init__(self, config):
            self.config = config

    clean_env.delenv(background.ENV, raising=False)
    (tmp_path / "pipelines").mkdir()
    try:
        aidevops_ext._load_jupyter_server_extension(App(Config({"Aidevops": {"scheduler": False}})))
        assert _scheduler_threads(tmp_path) == []
        aidevops_ext._load_jupyter_server_extension(App(Config()))
        aidevops_ext._load_jupyter_server_extension(App(Config()))
        assert len(_scheduler_threads(tmp_path)) == 1
    finally:
        background.stop_all()


@pytest.mark.parametrize(
    ("env", "config", "wanted"),
    [(None, True, True), ("0", True, False), ("1", False, True), (None, False, False), ("off", True, False)],
)
def test_the_env_var_wins_over_the_server_config(clean_env, env, config, wanted):
    if env is None:
        clean_env.delenv(background.ENV, raising=False)
    else:
        clean_env.setenv(background.ENV, env)
    assert background.wanted(config) is wanted
