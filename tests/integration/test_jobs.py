"""Background jobs (what the Lab panels start): a real pipeline run followed to its end, and bad requests refused up front."""

from __future__ import annotations

import os
import time

import pytest

from aidevops_ext import jobs
from aidevops_ext.errors import ConfigError
from aidevops_ext.workspace import Workspace
from tests.support.projects import copy_project


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return Workspace(copy_project(tmp_path_factory.mktemp("jobs")))


def wait(ws, job_id, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = jobs.get(ws, job_id)
        if job.status != jobs.RUNNING:
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} still running after {timeout} s")


def test_a_pipeline_run_in_the_background_is_followed_to_its_end(ws, monkeypatch):
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    job = jobs.start_run(ws, "ci", {"epochs": 2, "hidden": [8]})
    assert job.status == jobs.RUNNING and job.pid and job.argv == ["run", "ci", "-p", "epochs=2", "-p", "hidden=[8]"]
    done = wait(ws, job.id)
    assert done.status == jobs.SUCCEEDED and done.exit_code == 0, open(done.log).read()[-2000:]
    assert done.run_id, "the job names the run it produced"
    from aidevops_ext.pipeline.records import find_run

    run = find_run(ws, done.run_id)
    assert run["status"] == "succeeded" and run["overrides"] == {"epochs": 2, "hidden": [8]}
    assert [j.id for j in jobs.list_jobs(ws)][0] == done.id
    # A failing run: the job says failed, with the run's last line as its message.
    bad = wait(ws, jobs.start_run(ws, "ci", {"dataset": "no-such-dataset"}).id)
    assert bad.status == jobs.FAILED and bad.exit_code == 1 and "no-such-dataset" in bad.message


@pytest.mark.parametrize(
    "pipeline,overrides,message",
    [
        ("nope", {}, "pipeline spec 'nope' not found"),
        ("../etc/passwd", {}, "'pipeline' must be the name of a spec"),
        ("ci", {"epochz": 3}, "unknown parameter 'epochz'"),
        ("ci", {"epochs": "many"}, "parameter 'epochs' expects an integer"),
    ],
)
def test_bad_run_requests_start_nothing(ws, pipeline, overrides, message):
    before = len(jobs.list_jobs(ws))
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        jobs.start_run(ws, pipeline, overrides)
    assert len(jobs.list_jobs(ws)) == before


def test_unknown_jobs_and_deployments_are_refused(ws):
    with pytest.raises(ConfigError, match="there is no job 'abc123'"):
        jobs.get(ws, "abc123")
    with pytest.raises(ConfigError, match="not valid"):
        jobs.get(ws, "../../x")
    with pytest.raises(ConfigError, match="There is no deployment named 'ghost'"):
        jobs.start_retrain(ws, "ghost")
    assert not any(j.kind == "retrain" for j in jobs.list_jobs(ws))
    assert os.environ.get("AIDEVOPS_HOME") != str(ws.root), "jobs get the workspace explicitly"
