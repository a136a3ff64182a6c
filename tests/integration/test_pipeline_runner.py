"""The runner with real kernels on a toy pipeline: caching, failure and resume, selection, parallelism.

MLflow tracking is off here (track=False) so each case costs only its kernels; the real
pipeline with MLflow is covered in test_pipeline_e2e.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from aidevops_ext.errors import ConfigError
from aidevops_ext.pipeline import PipelineRunner, RunOptions, load_spec
from aidevops_ext.pipeline.executor import StepFailed
from aidevops_ext.workspace import Workspace
from tests.conftest import write_notebook

INJECTED = "step_dir = None\nupstream = None\nrun_dir = None\n"

SPEC = """
name: toy
params: {scale: 2, offset: 1}
steps:
  load:
    notebook: nb/load.ipynb
    inputs: [data.txt]
    outputs: [numbers.json]
  double:
    notebook: nb/double.ipynb
    needs: [load]
    outputs: [doubled.json]
  shift:
    notebook: nb/shift.ipynb
    needs: [load]
    outputs: [shifted.json]
  report:
    notebook: nb/report.ipynb
    needs: [double, shift]
    outputs: [report.json]
"""


@pytest.fixture
def toy(tmp_path, clean_env):
    """A workspace with a four-step diamond pipeline over a data file."""
    clean_env.setenv("AIDEVOPS_HOME", str(tmp_path))
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "toy.yaml").write_text(SPEC)
    (tmp_path / "data.txt").write_text("1 2 3\n")
    nb = tmp_path / "nb"
    write_notebook(
        nb / "load.ipynb",
        INJECTED,
        "import json, os\nnums = [int(x) for x in open('data.txt').read().split()]\n"
        "json.dump(nums, open(os.path.join(step_dir, 'numbers.json'), 'w'))",
    )
    write_notebook(
        nb / "double.ipynb",
        "scale = 1\n" + INJECTED,
        "import json, os\nnums = json.load(open(os.path.join(upstream['load'], 'numbers.json')))\n"
        "json.dump([n * scale for n in nums], open(os.path.join(step_dir, 'doubled.json'), 'w'))",
    )
    write_notebook(
        nb / "shift.ipynb",
        "offset = 0\n" + INJECTED,
        "import json, os\nnums = json.load(open(os.path.join(upstream['load'], 'numbers.json')))\n"
        "json.dump([n + offset for n in nums], open(os.path.join(step_dir, 'shifted.json'), 'w'))",
    )
    write_notebook(
        nb / "report.ipynb",
        INJECTED,
        "import json, os\nd = json.load(open(os.path.join(upstream['double'], 'doubled.json')))\n"
        "s = json.load(open(os.path.join(upstream['shift'], 'shifted.json')))\n"
        "json.dump({'sum': sum(d) + sum(s)}, open(os.path.join(step_dir, 'report.json'), 'w'))",
    )
    return tmp_path


def run(root: Path, **opts):
    ws = Workspace(root)
    spec = load_spec(root / "pipelines" / "toy.yaml", root)
    return PipelineRunner(ws, spec, RunOptions(track=False, progress=False, **opts), echo=lambda m: None).run()


def statuses(record) -> dict[str, str]:
    return {name: step["status"] for name, step in record.data["steps"].items()}


def report(record) -> dict:
    return json.loads((record.run_dir / "report" / "report.json").read_text())


def edit_notebook(path: Path, fn) -> None:
    nb = json.loads(path.read_text())
    fn(nb["cells"])
    path.write_text(json.dumps(nb))


def test_first_run_executes_everything_and_records_it(toy):
    rec = run(toy)
    assert statuses(rec) == {"load": "ran", "double": "ran", "shift": "ran", "report": "ran"}
    assert report(rec) == {"sum": (2 + 4 + 6) + (2 + 3 + 4)}
    data = json.loads((rec.run_dir / "run.json").read_text())
    assert data["status"] == "succeeded"
    for step in data["steps"].values():
        assert Path(step["notebook"]).is_file(), "executed notebook must be archived in the run folder"
        assert step["cache"] == "miss" and step["duration_s"] > 0 and len(step["cache_key"]) == 64
    executed = json.loads(Path(data["steps"]["double"]["notebook"]).read_text())
    injected = [c for c in executed["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert injected and "scale = 2" in "".join(injected[0]["source"])


def test_unchanged_pipeline_is_cached_in_every_later_run(toy):
    first = run(toy)
    for _ in range(2):
        again = run(toy)
        assert set(statuses(again).values()) == {"cached"}
        assert report(again) == report(first)
        assert again.data["steps"]["report"]["cached_from_run"] == first.run_id


def test_markdown_edit_skips_code_edit_reruns_step_and_downstream(toy):
    run(toy)
    edit_notebook(toy / "nb" / "double.ipynb", lambda cells: cells[0].update(source="Reworded prose."))
    assert set(statuses(run(toy)).values()) == {"cached"}
    edit_notebook(
        toy / "nb" / "double.ipynb",
        lambda cells: cells[2].update(source=cells[2]["source"].replace("n * scale", "n * scale * 10")),
    )
    rec = run(toy)
    assert statuses(rec) == {"load": "cached", "double": "ran", "shift": "cached", "report": "ran"}
    assert report(rec)["sum"] == 120 + 9


def test_param_change_reruns_only_affected_steps(toy):
    run(toy)
    rec = run(toy, overrides={"offset": 5})
    assert statuses(rec) == {"load": "cached", "double": "cached", "shift": "ran", "report": "ran"}
    assert report(rec)["sum"] == 12 + (6 + 7 + 8)
    # Going back to the original value is a cache hit again (content-addressed, not "last run").
    assert set(statuses(run(toy)).values()) == {"cached"}


def test_output_unchanged_upstream_rerun_keeps_downstream_cached(toy):
    run(toy)
    edit_notebook(toy / "nb" / "load.ipynb", lambda cells: cells[2].update(source=cells[2]["source"] + "\n# comment"))
    rec = run(toy)
    assert statuses(rec) == {"load": "ran", "double": "cached", "shift": "cached", "report": "cached"}


def test_data_change_with_same_mtime_reruns(toy):
    run(toy)
    data = toy / "data.txt"
    st = data.stat()
    data.write_text("4 5 6\n")  # same size, then restore the mtime: only the content tells
    os.utime(data, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert data.stat().st_mtime_ns == st.st_mtime_ns
    rec = run(toy)
    assert set(statuses(rec).values()) == {"ran"}
    assert report(rec)["sum"] == (8 + 10 + 12) + (5 + 6 + 7)


def test_failure_names_step_and_cell_then_resume(toy):
    run(toy)
    write_notebook(toy / "nb" / "shift.ipynb", "offset = 0\n" + INJECTED, "x = 1", "raise ValueError('bad shift')")
    with pytest.raises(StepFailed) as err:
        run(toy, overrides={"offset": 3})
    msg = str(err.value)
    assert "step 'shift' failed in cell" in msg and "ValueError: bad shift" in msg
    failed_nb = Path(msg.split("the executed notebook with the error is ")[1].split(";")[0])
    assert failed_nb.is_file() and "bad shift" in failed_nb.read_text()
    runs_dir = toy / ".aidevops" / "runs" / "toy"
    failed = json.loads((sorted(runs_dir.iterdir())[-1] / "run.json").read_text())
    assert failed["status"] == "failed" and failed["steps"]["shift"]["status"] == "failed"
    assert failed["steps"]["report"]["status"] == "pending", "nothing downstream of a failure runs"
    # Fix it and run again: finished steps come from the cache, the run resumes at 'shift'.
    write_notebook(
        toy / "nb" / "shift.ipynb",
        "offset = 0\n" + INJECTED,
        "import json, os\nnums = json.load(open(os.path.join(upstream['load'], 'numbers.json')))\n"
        "json.dump([n + offset for n in nums], open(os.path.join(step_dir, 'shifted.json'), 'w'))",
    )
    rec = run(toy, overrides={"offset": 3})
    assert statuses(rec) == {"load": "cached", "double": "cached", "shift": "ran", "report": "ran"}
    assert rec.data["resumed_from"] == failed["run_id"]


def test_declared_output_not_written_fails(toy):
    write_notebook(toy / "nb" / "load.ipynb", INJECTED, "x = 1")
    with pytest.raises(StepFailed, match=r"did not write its declared output\(s\) numbers.json"):
        run(toy)


def test_only_and_until(toy):
    with pytest.raises(ConfigError, match="no cached result"):
        run(toy, only="double")
    rec = run(toy, until="double")
    assert statuses(rec) == {"load": "ran", "double": "ran", "shift": "not selected", "report": "not selected"}
    rec = run(toy, only="double", force=True)
    assert statuses(rec)["load"] == "cached" and statuses(rec)["double"] == "ran"
    with pytest.raises(ConfigError, match="no step 'nope'"):
        run(toy, only="nope")


def test_parallel_jobs_give_the_same_result(toy):
    rec = run(toy, jobs=2)
    assert set(statuses(rec).values()) == {"ran"}
    assert report(rec)["sum"] == 21
    starts = {s: rec.data["steps"][s]["started"] for s in ("double", "shift")}
    assert all(starts.values())


def test_missing_input_file_is_a_clear_error(toy):
    (toy / "data.txt").unlink()
    with pytest.raises(ConfigError, match="input file .*data.txt declared by step 'load' does not exist"):
        run(toy)


def test_missing_kernel_is_named(toy):
    spec = (toy / "pipelines" / "toy.yaml").read_text().replace("name: toy", "name: toy\nkernel: no-such-kernel")
    (toy / "pipelines" / "toy.yaml").write_text(spec)
    with pytest.raises(Exception, match="kernel 'no-such-kernel' is not installed"):
        run(toy)


def test_kernel_warm_up_leaves_no_names_behind(toy):
    # load.ipynb imports json and os, so waiting kernels pre-import them; a notebook that uses
    # `json` without importing it must still fail, exactly as it would when run by hand.
    write_notebook(toy / "nb" / "shift.ipynb", "offset = 0\n" + INJECTED, "json.dumps([offset])")
    with pytest.raises(StepFailed, match="NameError: name 'json' is not defined"):
        run(toy)


def test_imported_modules_are_read_from_top_level_imports(toy):
    from aidevops_ext.pipeline.notebook import read_notebook

    path = write_notebook(
        toy / "nb" / "imports.ipynb",
        "a = 1",
        "import json, os.path\nfrom collections import abc\ndef f():\n    import csv\n",
        "%matplotlib inline",
        "from . import rel",
    )
    assert read_notebook(path).imported_modules() == ["json", "os.path", "collections"]
