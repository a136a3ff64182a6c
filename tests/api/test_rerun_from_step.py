"""POST runs/ID/rerun with `from_step` (the Runs panel's "Run from here"): the background job runs that step and
exactly what is downstream of it, upstream from the cache; an unknown step is a one-sentence 400 and starts nothing.

A real job (`aidevops run toy --from double --force` in its own process) on a four-step diamond of tiny notebooks,
through the Jupyter server extension in this process (jp_fetch).
"""

from __future__ import annotations

import asyncio
import time

from aidevops_ext.pipeline import PipelineRunner, RunOptions, load_spec
from aidevops_ext.workspace import Workspace
from tests.conftest import write_notebook

INJECTED = "step_dir = None\nupstream = None\nrun_dir = None\n"
# shift is beside double, not below it: report needs both, so a run from double takes shift from the cache.
TOY = """
name: toy
params: {scale: 2}
steps:
  load: {notebook: nb/load.ipynb, outputs: [numbers.json]}
  double: {notebook: nb/double.ipynb, needs: [load], outputs: [doubled.json]}
  shift: {notebook: nb/shift.ipynb, needs: [load], outputs: [shifted.json]}
  report: {notebook: nb/report.ipynb, needs: [double, shift], outputs: [report.json]}
"""
JOB_SECONDS = 300  # a job's own process starts kernels and MLflow on a loaded 2-core machine


def _read(step: str, name: str) -> str:
    return f"json.load(open(os.path.join(upstream['{step}'], '{name}')))"


def _write_toy(root) -> None:
    """The diamond pipeline and its notebooks in `root`."""
    (root / "pipelines" / "toy.yaml").write_text(TOY)
    write = "json.dump({value}, open(os.path.join(step_dir, '{out}'), 'w'))"
    write_notebook(
        root / "nb" / "load.ipynb", INJECTED, "import json, os\n" + write.format(value="[1, 2]", out="numbers.json")
    )
    write_notebook(
        root / "nb" / "double.ipynb",
        "scale = 1\n" + INJECTED,
        f"import json, os\nn = {_read('load', 'numbers.json')}\n"
        + write.format(value="[x * scale for x in n]", out="doubled.json"),
    )
    write_notebook(
        root / "nb" / "shift.ipynb",
        INJECTED,
        f"import json, os\nn = {_read('load', 'numbers.json')}\n"
        + write.format(value="[x + 1 for x in n]", out="shifted.json"),
    )
    write_notebook(
        root / "nb" / "report.ipynb",
        INJECTED,
        f"import json, os\nd = {_read('double', 'doubled.json')}\ns = {_read('shift', 'shifted.json')}\n"
        + write.format(value="{'sum': sum(d) + sum(s)}", out="report.json"),
    )


def _toy(root) -> str:
    """The diamond pipeline, run once in this process; the run's id."""
    _write_toy(root)
    spec = load_spec(root / "pipelines" / "toy.yaml", root)
    options = RunOptions(progress=False, track=False)
    return PipelineRunner(Workspace(root), spec, options, echo=lambda m: None).run().run_id


async def _finished(api, job_id: str) -> dict:
    deadline = time.monotonic() + JOB_SECONDS
    while True:
        status, job = await api("GET", f"jobs/{job_id}")
        assert status == 200, job
        if job["status"] != "running":
            return job
        assert time.monotonic() < deadline, f"job {job_id} still running: {job['log_tail'][-5:]}"
        await asyncio.sleep(0.5)


async def test_rerun_from_a_step_runs_exactly_it_and_its_downstream_with_upstream_from_the_cache(api, workspace):
    first = _toy(workspace)
    status, answer = await api("POST", f"runs/{first}/rerun", {"from_step": "double", "params": {"scale": 2}})
    assert status == 202, answer
    assert answer["job"]["argv"] == ["run", "toy", "--from", "double", "--force", "-p", "scale=2"]
    job = await _finished(api, answer["job"]["id"])
    assert job["status"] == "succeeded", job["log_tail"]
    assert job["run_id"] and job["run_id"] != first
    status, run = await api("GET", f"runs/{job['run_id']}")
    assert status == 200
    states = {name: step["status"] for name, step in run["steps"].items()}
    assert states == {"load": "cached", "double": "ran", "shift": "cached", "report": "ran"}
    assert run["overrides"] == {"scale": 2}
    assert f"reused the output of run {first}" in " ".join(run["steps"]["load"]["why"]), run["steps"]["load"]
    status, listed = await api("GET", "runs?limit=5")
    assert listed["runs"][0]["steps"]["load"]["why"] == run["steps"]["load"]["why"], "the list carries each step's why"


async def test_rerun_from_an_unknown_step_is_one_sentence_and_starts_no_job(api, workspace):
    _write_toy(workspace)
    folder = workspace / ".aidevops" / "runs" / "toy" / "20261201-100000-000-aaaaaa"
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(
        '{"run_id": "20261201-100000-000-aaaaaa", "pipeline": "toy", "status": "succeeded", "steps": {}}'
    )
    status, answer = await api("POST", "runs/20261201-100000-000-aaaaaa/rerun", {"from_step": "train"})
    assert status == 400
    assert answer["error"] == "pipeline 'toy' has no step 'train'; its steps are: load, double, shift, report."
    status, answer = await api("POST", "runs/20261201-100000-000-aaaaaa/rerun", {"from_step": "../x"})
    assert status == 400 and answer["error"].startswith("Field 'from_step' has the value"), answer
    status, jobs = await api("GET", "jobs")
    assert status == 200 and jobs["jobs"] == []
