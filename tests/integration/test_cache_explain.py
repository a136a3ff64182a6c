"""A cache that is right and explains itself, and run-from-here, with real kernels and a real MLflow store.

- registry state a step declares (`reads: [model@champion]`) is part of its key: moving the alias
  re-runs exactly the steps that read it;
- a hit whose MLflow run is gone (mlflow.db deleted) is a miss, with the reason recorded;
- `aidevops show RUN --why` names the changed code cell and param, and the run a hit reused;
- `aidevops run --from STEP` runs that step and what is downstream of it, upstream from the cache.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from aidevops_ext.api import views
from aidevops_ext.cli import main
from aidevops_ext.errors import ConfigError
from aidevops_ext.pipeline import PipelineRunner, RunOptions, load_spec
from aidevops_ext.pipeline.records import iter_runs
from aidevops_ext.workspace import Workspace
from tests.conftest import write_notebook

INJECTED = "step_dir = None\nupstream = None\nrun_dir = None\n"

# A diamond without registry reads (for --why and --from).
TOY = """
name: toy
params: {scale: 2, offset: 1}
steps:
  load: {notebook: nb/load.ipynb, outputs: [numbers.json]}
  double: {notebook: nb/double.ipynb, needs: [load], outputs: [doubled.json]}
  shift: {notebook: nb/shift.ipynb, needs: [load], outputs: [shifted.json]}
  report: {notebook: nb/report.ipynb, needs: [double, shift], outputs: [report.json]}
"""

# A chain whose evaluate and register steps read the champion alias, as the digits pipelines do.
GATED = """
name: gated
model: toy-model
steps:
  load: {notebook: nb/load.ipynb, outputs: [numbers.json]}
  train: {notebook: nb/copy.ipynb, needs: [load], params: {src: load, out: model.json}, outputs: [model.json]}
  evaluate: {notebook: nb/copy.ipynb, needs: [train], reads: [model@champion],
             params: {src: train, out: metrics.json}, outputs: [metrics.json]}
  register: {notebook: nb/copy.ipynb, needs: [evaluate], reads: [model@champion],
             params: {src: evaluate, out: registration.json}, outputs: [registration.json]}
  report: {notebook: nb/copy.ipynb, needs: [register], params: {src: register, out: report.json}, outputs: [report.json]}
"""

# The same chain whose register step registers a version in its own MLflow run and makes it champion.
PROMOTING = GATED.replace("name: gated", "name: promoting").replace(
    "register: {notebook: nb/copy.ipynb", "register: {notebook: nb/promote.ipynb"
)


def _read_upstream(step: str, name: str) -> str:
    return f"json.load(open(os.path.join(upstream['{step}'], '{name}')))"


@pytest.fixture
def project(tmp_path, clean_env):
    clean_env.setenv("AIDEVOPS_HOME", str(tmp_path))
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "toy.yaml").write_text(TOY)
    (tmp_path / "pipelines" / "gated.yaml").write_text(GATED)
    (tmp_path / "pipelines" / "promoting.yaml").write_text(PROMOTING)
    nb = tmp_path / "nb"
    write_notebook(
        nb / "load.ipynb",
        INJECTED,
        "import json, os\njson.dump([1, 2, 3], open(os.path.join(step_dir, 'numbers.json'), 'w'))",
    )
    write_notebook(
        nb / "double.ipynb",
        "scale = 1\n" + INJECTED,
        f"import json, os\nnums = {_read_upstream('load', 'numbers.json')}\n"
        "json.dump([n * scale for n in nums], open(os.path.join(step_dir, 'doubled.json'), 'w'))",
    )
    write_notebook(
        nb / "shift.ipynb",
        "offset = 0\n" + INJECTED,
        f"import json, os\nnums = {_read_upstream('load', 'numbers.json')}\n"
        "json.dump([n + offset for n in nums], open(os.path.join(step_dir, 'shifted.json'), 'w'))",
    )
    write_notebook(
        nb / "report.ipynb",
        INJECTED,
        f"import json, os\nd = {_read_upstream('double', 'doubled.json')}\n"
        f"s = {_read_upstream('shift', 'shifted.json')}\n"
        "json.dump({'sum': sum(d) + sum(s)}, open(os.path.join(step_dir, 'report.json'), 'w'))",
    )
    # Copies its upstream's only output: a step whose output does not depend on the registry.
    write_notebook(
        nb / "copy.ipynb",
        "src = None\nout = None\n" + INJECTED,
        "import os, shutil\nfolder = upstream[src]\n"
        "shutil.copy(os.path.join(folder, sorted(f for f in os.listdir(folder) if f.endswith('.json'))[0]),"
        " os.path.join(step_dir, out))",
    )
    write_notebook(
        nb / "promote.ipynb",
        "src = None\nout = None\nmlflow_run_id = None\n" + INJECTED,
        "import json, os\nfrom mlflow import MlflowClient\nclient = MlflowClient()\n"
        "if not client.search_registered_models(\"name = 'toy-model'\"):\n"
        "    client.create_registered_model('toy-model')\n"
        "mv = client.create_model_version('toy-model', os.path.abspath(step_dir), run_id=mlflow_run_id)\n"
        "client.set_registered_model_alias('toy-model', 'champion', mv.version)\n"
        "json.dump({'version': mv.version}, open(os.path.join(step_dir, out), 'w'))",
    )
    return tmp_path


def run(root: Path, pipeline: str, **opts):
    opts.setdefault("track", False)
    spec = load_spec(root / "pipelines" / f"{pipeline}.yaml", root)
    return PipelineRunner(Workspace(root), spec, RunOptions(progress=False, **opts), echo=lambda m: None).run()


def statuses(record) -> dict[str, str]:
    return {name: step["status"] for name, step in record.data["steps"].items()}


def registry_client(root: Path):
    from mlflow import MlflowClient

    from aidevops_ext import registry

    ws = Workspace(root)
    registry.configure(ws)
    return MlflowClient(tracking_uri=ws.tracking_uri, registry_uri=ws.registry_uri)


def test_moving_champion_reruns_evaluate_and_register_and_nothing_else(project):
    client = registry_client(project)
    client.create_registered_model("toy-model")
    for _ in range(2):
        client.create_model_version("toy-model", (project / "nb").as_uri())
    client.set_registered_model_alias("toy-model", "champion", "1")
    first = run(project, "gated")
    assert set(statuses(first).values()) == {"ran"}
    assert first.data["registry"] == {"toy-model@champion": "1"}
    second = run(project, "gated")
    assert set(statuses(second).values()) == {"cached"}

    client.set_registered_model_alias("toy-model", "champion", "2")
    moved = run(project, "gated")
    assert statuses(moved) == {
        "load": "cached",
        "train": "cached",
        "evaluate": "ran",
        "register": "ran",
        "report": "cached",
    }
    # Against the last run of the step, which reused the first run's output.
    assert (
        f"against run {second.run_id}: registry toy-model@champion: version 1 → 2"
        in moved.data["steps"]["evaluate"]["why"]
    )


def test_a_runs_own_promotion_leaves_the_next_run_fully_cached(project):
    first = run(project, "promoting", track=True)
    assert first.data["steps"]["register"]["model_versions"] == [{"name": "toy-model", "version": "1"}]
    # The champion moved from none to version 1, but this run moved it: no self-comparison, no version 2.
    again = run(project, "promoting", track=True)
    assert set(statuses(again).values()) == {"cached"}
    assert again.data["registry"] == {"toy-model@champion": "1"}


def test_deleted_mlflow_db_makes_register_a_miss_with_the_reason(project):
    first = run(project, "promoting", track=True)
    register_run = first.data["steps"]["register"]["mlflow_run_id"]
    assert register_run
    (Workspace(project).state / "mlflow.db").unlink()

    # A new process, as after deleting the file by hand: this one's MLflow store still holds the old file open.
    done = subprocess.run(
        [sys.executable, "-m", "aidevops_ext.cli", "run", "promoting"],
        cwd=project,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    again = next(r for r in iter_runs(Workspace(project), "promoting"))
    steps = again["steps"]
    # Steps that touch no registry state keep their hits; those that read it check it is still there.
    assert {name: step["status"] for name, step in steps.items()} == {
        "load": "cached",
        "train": "cached",
        "evaluate": "ran",
        "register": "ran",
        "report": "cached",
    }
    reason = steps["register"]["cache_reason"]
    assert f"its MLflow run {register_run} no longer exists" in reason
    assert reason in steps["register"]["why"]


def test_show_why_names_the_changed_code_cell_and_param(project):
    first = run(project, "toy")
    notebook = project / "nb" / "double.ipynb"
    nb = json.loads(notebook.read_text())
    nb["cells"][2]["source"] = nb["cells"][2]["source"].replace("n * scale", "n * scale + 0")
    notebook.write_text(json.dumps(nb))
    second = run(project, "toy", overrides={"scale": 3})

    result = CliRunner().invoke(main, ["show", second.run_id, "--why"])
    assert result.exit_code == 0, result.output
    assert f"why: against run {first.run_id}: code cell 2 changed" in result.output
    assert f"why: against run {first.run_id}: param scale: 2 → 3" in result.output
    assert f"why: cached: reused the output of run {first.run_id}" in result.output  # load and shift
    # The Runs panel's run view carries the same sentences per step.
    answer = views.run(Workspace(project), second.run_id)
    assert answer["steps"]["double"]["why"] == second.data["steps"]["double"]["why"]
    assert answer["steps"]["report"]["why"] == [
        f"against run {first.run_id}: upstream double: output doubled.json changed"
    ]


def test_run_from_runs_exactly_the_step_and_its_downstream(project):
    run(project, "toy")
    rec = run(project, "toy", from_step="double", force=True)
    # shift is not downstream of double, but report needs it: it comes from the cache like load.
    assert rec.data["selected"] == ["double", "report"]
    assert statuses(rec) == {"load": "cached", "double": "ran", "shift": "cached", "report": "ran"}


def test_run_from_without_cached_upstream_says_what_to_run_first(project):
    with pytest.raises(ConfigError, match=r"needs 'load', which has no cached result .*aidevops run --until load"):
        run(project, "toy", from_step="double")


def test_a_reads_entry_that_is_neither_an_alias_nor_a_need_is_named(project):
    (project / "pipelines" / "bad.yaml").write_text(GATED.replace("reads: [model@champion],", "reads: [champion],", 1))
    with pytest.raises(
        ConfigError, match=r"'reads' entry 'champion' of step 'evaluate' in bad.yaml is neither MODEL@ALIAS"
    ):
        load_spec(project / "pipelines" / "bad.yaml", project)
