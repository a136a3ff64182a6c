"""The real CI pipeline end to end: real kernels, a real SQLite MLflow store, the gate, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import run_cli
from tests.support.projects import copy_project


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A copy of the project's notebooks and pipelines in a fresh workspace (module-wide: runs are slow)."""
    return copy_project(tmp_path_factory.mktemp("project"))


def aidevops(root: Path, *args: str, env: dict | None = None, timeout: int = 400) -> subprocess.CompletedProcess:
    """Run the CLI as a user would, in `root`, with no MLflow/aidevops settings leaking in."""
    return run_cli(*args, cwd=root, env={"MPLBACKEND": "Agg", **(env or {})}, timeout=timeout)


@pytest.fixture(scope="module")
def first_run(project):
    """The CI pipeline's first run in the module's project: it registers v1 as champion.

    Every test that needs a champion or a run history asks for it, so each test passes on its own too.
    """
    out = aidevops(project, "run", "ci")
    return out, latest_run(project) if out.returncode == 0 else None


@pytest.fixture(scope="module")
def failed_run(first_run, project):
    """A run whose prepare step raises (an unknown dataset), after the first run."""
    before = len(models(project)["ci-digits"]["versions"])
    out = aidevops(project, "run", "ci", "-p", "dataset=no-such-dataset")
    return out, before


def models(root: Path) -> dict:
    out = aidevops(root, "models", "--json")
    assert out.returncode == 0, out.stderr
    return {m["name"]: m for m in json.loads(out.stdout)}


def latest_run(root: Path) -> dict:
    out = aidevops(root, "show", "latest", "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_ci_pipeline_registers_a_champion_with_lineage(project, first_run):
    out, run = first_run
    assert out.returncode == 0, out.stderr[-3000:]
    assert run["status"] == "succeeded"
    assert {s["status"] for s in run["steps"].values()} == {"ran"}
    assert run["mlflow"]["run_id"], "one parent MLflow run per pipeline run"
    assert all(s["mlflow_run_id"] for s in run["steps"].values()), "one nested MLflow run per step"
    registration = json.loads(Path(run["run_dir"], "register", "registration.json").read_text())
    assert registration["gate_passed"] and registration["champion_moved"]
    executed = json.loads(Path(run["steps"]["train"]["notebook"]).read_text())
    outputs = [o for c in executed["cells"] for o in c.get("outputs", [])]
    assert any("image/png" in o.get("data", {}) for o in outputs), (
        "the learning curve is embedded in the executed notebook"
    )
    model = models(project)["ci-digits"]
    v1 = next(v for v in model["versions"] if v["version"] == "1")
    assert set(v1["aliases"]) == {"champion", "challenger"}
    assert v1["gate_passed"] is True
    tags = v1["tags"]
    assert tags["aidevops.pipeline_run_id"] == run["run_id"]
    assert tags["aidevops.git_commit"] and tags["aidevops.data_hash"] != "unknown"
    notebooks = json.loads(tags["aidevops.notebooks"])
    assert set(notebooks) >= {"prepare", "train", "evaluate"} and notebooks["train"].startswith("runs:/")
    # MLflow holds the executed notebooks of the steps and the nested structure.
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / '.aidevops' / 'mlflow.db'}")
    train_run = client.get_run(run["steps"]["train"]["mlflow_run_id"])
    assert train_run.data.tags["mlflow.parentRunId"] == run["mlflow"]["run_id"]
    assert "loss" in train_run.data.metrics, "per-epoch metrics logged"
    assert [a.path for a in client.list_artifacts(train_run.info.run_id, "notebooks")] == ["notebooks/02_train.ipynb"]
    # The registered model serves through MLflow's own loader and agrees with the model file.
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{project / '.aidevops' / 'mlflow.db'}"}
    check = subprocess.run(
        [
            sys.executable,
            "-c",
            "import mlflow, numpy as np; from aidevops_ext.trainer import data, load_model;"
            f"m = mlflow.pyfunc.load_model('models:/ci-digits@champion');"
            f"s = data.load_split('{run['run_dir']}/prepare/split');"
            f"e = load_model('{run['run_dir']}/train/model.npz');"
            "p = np.asarray(m.predict(s.X_test[:50])).ravel();"
            "assert (p == e.predict(s.X_test[:50])).all(), p; print('same')",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )
    assert check.returncode == 0 and "same" in check.stdout, check.stderr[-2000:]


def test_rerun_is_fully_cached_and_registers_nothing(project, first_run):
    before = models(project)["ci-digits"]["versions"]
    out = aidevops(project, "run", "ci")
    assert out.returncode == 0, out.stderr[-2000:]
    assert {s["status"] for s in latest_run(project)["steps"].values()} == {"cached"}
    assert models(project)["ci-digits"]["versions"] == before


def test_fully_cached_run_imports_no_heavy_modules(project, first_run):
    code = (
        "import sys; from aidevops_ext.cli import main\n"
        "try:\n    main(['run', 'ci'])\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'papermill', 'nbclient', 'mlflow', 'nbformat', 'numpy'})\n"
        "print('heavy:', heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k not in ("AIDEVOPS_HOME", "MLFLOW_TRACKING_URI")},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "heavy: []" in out.stdout


def test_worse_model_fails_the_gate_and_champion_stays(project, first_run):
    champion = models(project)["ci-digits"]["aliases"]["champion"]
    out = aidevops(project, "run", "ci", "-p", "epochs=1", "-p", "hidden=[4]")
    assert out.returncode == 0, out.stderr[-2000:]
    run = latest_run(project)
    assert run["steps"]["prepare"]["status"] == "cached" and run["steps"]["train"]["status"] == "ran"
    registration = json.loads(Path(run["run_dir"], "register", "registration.json").read_text())
    assert registration["gate_passed"] is False and registration["champion_moved"] is False
    assert any("accuracy" in r for r in registration["reasons"])
    versions = {v["version"]: v for v in models(project)["ci-digits"]["versions"]}
    new = str(registration["version"])
    assert "champion" in versions[champion]["aliases"] and "champion" not in versions[new]["aliases"]
    assert "challenger" in versions[new]["aliases"]
    assert versions[new]["gate_passed"] is False


def test_failed_run_registers_nothing_and_names_the_step(project, failed_run):
    out, versions_before = failed_run
    assert out.returncode == 1
    err = out.stderr.strip().splitlines()[-1]
    assert err.startswith("error: step 'prepare' failed in cell") and "no-such-dataset" in err
    assert "01_prepare_data.ipynb" in err
    assert latest_run(project)["status"] == "failed"
    assert len(models(project)["ci-digits"]["versions"]) == versions_before


@pytest.mark.parametrize(
    "args,message",
    [
        (["-p", "epochz=3"], "unknown parameter 'epochz' for pipeline 'ci'; valid parameters: "),
        (["-p", "epochs=many"], "parameter 'epochs' expects an integer"),
        (["--only", "nope"], "has no step 'nope'"),
    ],
)
def test_bad_arguments_are_one_sentence_and_touch_nothing(project, first_run, args, message):
    before = sorted((project / ".aidevops" / "runs" / "ci").iterdir())
    out = aidevops(project, "run", "ci", *args)
    assert out.returncode == 2
    assert message in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert sorted((project / ".aidevops" / "runs" / "ci").iterdir()) == before


def test_unreachable_tracking_server_fails_fast(project):
    spec = (project / "pipelines" / "ci.yaml").read_text().replace("epochs: 8", "epochs: 7")
    (project / "pipelines" / "unreachable.yaml").write_text(spec.replace("name: ci", "name: unreachable"))
    out = aidevops(project, "run", "unreachable", env={"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}, timeout=60)
    assert out.returncode == 2
    assert "unreachable" in out.stderr and "MLFLOW_TRACKING_URI" in out.stderr
    assert "Traceback" not in out.stderr


def test_spec_errors_are_named(project):
    broken = project / "pipelines"
    (broken / "cycle.yaml").write_text(
        "steps:\n  a: {notebook: notebooks/01_prepare_data.ipynb, needs: [b]}\n"
        "  b: {notebook: notebooks/02_train.ipynb, needs: [a]}\n"
    )
    out = aidevops(project, "run", "cycle")
    assert out.returncode == 2 and "form a cycle" in out.stderr
    (broken / "missing.yaml").write_text("steps:\n  a: {notebook: notebooks/nope.ipynb}\n")
    out = aidevops(project, "run", "missing")
    assert out.returncode == 2 and "notebooks/nope.ipynb, which does not exist" in out.stderr
    out = aidevops(project, "run", "does-not-exist")
    assert out.returncode == 2 and "not found" in out.stderr


def test_runs_and_show_list_what_happened(project, failed_run):
    out = aidevops(project, "runs")
    assert out.returncode == 0 and "ci" in out.stdout and "succeeded" in out.stdout and "failed" in out.stdout
    run = latest_run(project)
    out = aidevops(project, "show", run["run_id"][:15])
    assert out.returncode == 0 and run["run_id"] in out.stdout
