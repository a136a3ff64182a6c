"""The step contract: a notebook written for papermill alone runs as a pipeline step unchanged.

Its relative reads resolve against the project (and the upstream outputs), its relative writes become
the step's outputs, and a plain `mlflow.sklearn.log_model` lands in the step's own MLflow run. Real
kernels, a real MLflow store (docs/write-your-own-step.md).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from aidevops_ext.pipeline import PipelineRunner, RunOptions, load_spec
from aidevops_ext.pipeline.stepdir import link_step_folder
from aidevops_ext.review.runs import RunView
from aidevops_ext.workspace import Workspace
from tests.conftest import write_notebook

SPEC = """
name: plain
params: {min_age: 18}
steps:
  prepare:
    notebook: notebooks/prepare.ipynb
    inputs: [data/customers.csv]
    outputs: [train.parquet]
  train:
    notebook: notebooks/train.ipynb
    needs: [prepare]
    outputs: [reports/score.json]
  check:
    notebook: notebooks/check.ipynb
    needs: [prepare]
"""

# What a papermill user writes: a parameters cell and relative paths; nothing from aidevops.
PREPARE = (
    "import pandas as pd\n"
    "from helpers import adults\n"
    "frame = adults(pd.read_csv('data/customers.csv'), min_age)\n"
    "frame.to_parquet('train.parquet')"
)
TRAIN = (
    "import json, os\n"
    "import mlflow, pandas as pd\n"
    "from sklearn.linear_model import LogisticRegression\n"
    "frame = pd.read_parquet('train.parquet')\n"
    "model = LogisticRegression().fit(frame[['age', 'spend']], frame['churned'])\n"
    "mlflow.sklearn.log_model(model, name='model')\n"
    "json.dump({'score': model.score(frame[['age', 'spend']], frame['churned']),\n"
    "           'project': os.environ['AIDEVOPS_PROJECT']}, open('reports/score.json', 'w'))"
)

# The other common papermill pattern: its own `with mlflow.start_run()`, which resumes the step's run.
CHECK = (
    "import mlflow, pandas as pd\n"
    "with mlflow.start_run():\n"
    "    mlflow.log_metric('rows', len(pd.read_parquet('train.parquet')))"
)


@pytest.fixture
def project(tmp_path, clean_env):
    """A project as a papermill user has it: data/, a helper module, notebooks/, pipelines/."""
    root = tmp_path / "proj"
    (root / "pipelines").mkdir(parents=True)
    (root / "pipelines" / "plain.yaml").write_text(SPEC)
    (root / "data").mkdir()
    rows = ["age,spend,churned"] + [f"{15 + i % 50},{(i * 37) % 100},{i % 2}" for i in range(60)]
    (root / "data" / "customers.csv").write_text("\n".join(rows) + "\n")
    (root / "helpers.py").write_text("def adults(frame, min_age):\n    return frame[frame.age >= min_age]\n")
    write_notebook(root / "notebooks" / "prepare.ipynb", "min_age = 0", PREPARE)
    write_notebook(root / "notebooks" / "train.ipynb", "", TRAIN)
    write_notebook(root / "notebooks" / "check.ipynb", "", CHECK)
    clean_env.setenv("AIDEVOPS_HOME", str(root))
    return root


def run(root: Path, *, track: bool = True, **opts):
    spec = load_spec(root / "pipelines" / "plain.yaml", root)
    return PipelineRunner(
        Workspace(root), spec, RunOptions(track=track, progress=False, **opts), echo=lambda m: None
    ).run()


def test_plain_papermill_notebooks_run_as_steps_with_relative_paths(project):
    before = sorted(p.name for p in project.iterdir())
    rec = run(project)
    steps = rec.data["steps"]
    assert {s["status"] for s in steps.values()} == {"ran"}

    # Relative writes are the step's outputs: real files in the step folder, hashed into the cache.
    train_parquet = rec.run_dir / "prepare" / "train.parquet"
    assert train_parquet.is_file() and not train_parquet.is_symlink()
    import pandas as pd

    assert pd.read_parquet(train_parquet)["age"].min() == 18, "the parameter reached the plain notebook"
    assert set(steps["prepare"]["outputs"]) == {"train.parquet"}
    assert set(steps["train"]["outputs"]) == {"reports/score.json"}
    score = json.loads((rec.run_dir / "train" / "reports" / "score.json").read_text())
    assert score["project"] == str(project) and 0.0 <= score["score"] <= 1.0

    # Nothing lands in the project, and the links that made the project readable are gone.
    assert sorted(p.name for p in project.iterdir() if p.name != ".aidevops") == before, "no __pycache__ either"
    for step in ("prepare", "train", "check"):
        assert not [p for p in (rec.run_dir / step).rglob("*") if p.is_symlink()], step

    # A plain mlflow.sklearn.log_model in the notebook lands in the train step's own run.
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{project / '.aidevops' / 'mlflow.db'}")
    step_run = steps["train"]["mlflow_run_id"]
    models = client.search_logged_models(experiment_ids=[client.get_run(step_run).info.experiment_id])
    assert [m.source_run_id for m in models] == [step_run]
    rows = client.get_run(steps["check"]["mlflow_run_id"]).data.metrics["rows"]
    assert rows == len(pd.read_parquet(train_parquet)), "a notebook's own start_run() resumed its step's run"
    assert not (project / "mlruns").exists() and not (rec.run_dir / "train" / "mlflow.db").exists()


def test_links_do_not_reach_cache_review_or_later_runs(project):
    first = run(project, track=False)
    again = run(project, track=False)
    assert {s["status"] for s in again.data["steps"].values()} == {"cached"}
    cache = project / ".aidevops" / "cache"
    stored = sorted(
        f.relative_to(files).as_posix() for files in cache.glob("*/*/files") for f in files.rglob("*") if f.is_file()
    )
    # Only declared outputs are stored: no linked project entries (data/, helpers.py, notebooks/).
    assert stored == ["reports/score.json", "train.parquet"]
    view = RunView(dict(first.data, run_dir=str(first.run_dir)))
    assert view.step_file("customers.csv") is None and view.step_file("helpers.py") is None
    assert view.notebook("train") is not None


def test_an_own_output_named_like_a_project_entry_is_written_in_the_step_folder(project):
    # The step declares data/clean.csv: the project's data/ is not linked, so writing cannot reach it.
    spec = project / "pipelines" / "plain.yaml"
    spec.write_text(
        "name: plain\nsteps:\n  clean:\n    notebook: notebooks/clean.ipynb\n    outputs: [data/clean.csv]\n"
    )
    write_notebook(
        project / "notebooks" / "clean.ipynb",
        "",
        "import os\nsrc = os.path.join(os.environ['AIDEVOPS_PROJECT'], 'data', 'customers.csv')\n"
        "open('data/clean.csv', 'w').write(open(src).read().upper())",
    )
    rec = run(project, track=False)
    assert (rec.run_dir / "clean" / "data" / "clean.csv").read_text().startswith("AGE,SPEND")
    assert sorted(p.name for p in (project / "data").iterdir()) == ["customers.csv"]


def test_step_folder_links_project_and_upstream_but_never_state_git_or_own_outputs(tmp_path):
    project = tmp_path / "p"
    for name in (".aidevops", ".git", "data", "model.pkl"):
        (project / name).mkdir(parents=True)
    (project / "train.parquet").write_text("project copy")
    (project / "README.md").write_text("readme")
    up = tmp_path / "up"
    up.mkdir()
    (up / "train.parquet").write_text("upstream")
    folder = tmp_path / "step"
    links = link_step_folder(
        folder,
        project,
        {"prepare": (up, ["train.parquet"])},
        reserved=["model.pkl", "reports/score.json", "step.ipynb"],
    )
    names = sorted(p.name for p in folder.iterdir() if p.is_symlink())
    assert names == ["README.md", "data", "train.parquet"]
    assert (folder / "train.parquet").read_text() == "upstream", "an upstream output wins over the project's"
    assert (folder / "reports").is_dir() and not (folder / "reports").is_symlink()
    links.remove()
    links.remove()
    assert sorted(p.name for p in folder.iterdir()) == ["reports"]
    assert (project / "README.md").read_text() == "readme" and (up / "train.parquet").is_file()


def test_existing_step_context_notebooks_keep_absolute_step_dir(project):
    # The shipped digits notebooks write through StepContext/step_dir and read upstream[...]: unchanged.
    (project / "pipelines" / "plain.yaml").write_text(
        "name: plain\nsteps:\n  a:\n    notebook: notebooks/a.ipynb\n    outputs: [x.json]\n"
        "  b:\n    notebook: notebooks/b.ipynb\n    needs: [a]\n    outputs: [y.json]\n"
    )
    injected = "step_dir = None\nupstream = None\n"
    write_notebook(
        project / "notebooks" / "a.ipynb",
        injected,
        "from aidevops_ext.pipeline.context import StepContext\n"
        "ctx = StepContext.create('a', step_dir=step_dir, upstream=upstream)\n"
        "ctx.output('x.json').write_text('[1, 2]')",
    )
    write_notebook(
        project / "notebooks" / "b.ipynb",
        injected,
        "import json, os\n"
        "from aidevops_ext.pipeline.context import StepContext\n"
        "ctx = StepContext.create('b', step_dir=step_dir, upstream=upstream, needs=['a'])\n"
        "x = json.loads(ctx.input('a', 'x.json').read_text())\n"
        "assert os.getcwd() == step_dir and ctx.workspace.root == ctx.workspace.discover().root\n"
        "ctx.output('y.json').write_text(json.dumps(sum(x)))",
    )
    rec = run(project, track=False)
    assert (rec.run_dir / "b" / "y.json").read_text() == "3"
    assert not (project / ".aidevops" / "scratch").exists(), "no step fell back to the interactive scratch folder"
    assert os.environ.get("AIDEVOPS_PROJECT") is None, "the runner's own environment is left as it was"


def test_aidevops_prefix_names_a_step_shipped_in_the_package(tmp_path, monkeypatch):
    from aidevops_ext.errors import ConfigError
    from aidevops_ext.pipeline import spec as spec_module

    shipped = tmp_path / "steps"
    write_notebook(shipped / "throwaway.ipynb", "x = 1", "y = x")
    monkeypatch.setattr(spec_module, "SHIPPED_STEPS", shipped)
    root = tmp_path / "proj"
    (root / "pipelines").mkdir(parents=True)
    path = root / "pipelines" / "p.yaml"
    path.write_text(
        "name: p\ndata: {table: customers.csv, target: churned}\nsteps:\n  t:\n    notebook: aidevops:throwaway\n"
    )
    loaded = load_spec(path, root)
    assert loaded.steps["t"].notebook == shipped / "throwaway.ipynb"
    assert loaded.data == {"table": "customers.csv", "target": "churned"}
    path.write_text("name: p\nsteps:\n  t:\n    notebook: aidevops:nope\n")
    with pytest.raises(
        ConfigError,
        match=r"^step 't' names aidevops:nope, which is not a shipped step; "
        r"shipped steps are: aidevops:throwaway\.$",
    ):
        load_spec(path, root)
