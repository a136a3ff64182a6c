"""`aidevops export argo`: the DAG, params and artifacts of the exported Workflow, validated with Hera's models.

The exported file is read back with Hera's pydantic models of Argo's API and dumped again: equality proves
every field is one Argo knows, with the type it expects (the models ignore unknown fields, so equality is
the strict check). Whether the pods' commands really run the pipeline is tested in test_remote_tracking.py,
which executes this export's commands one pod at a time in a fresh virtualenv.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from aidevops_ext.pipeline.runner import PipelineRunner, RunOptions
from aidevops_ext.pipeline.spec import load_spec
from aidevops_ext.workspace import Workspace
from tests.conftest import REPO
from tests.support.cli import run_cli

hera_models = pytest.importorskip("hera.workflows.models")


def cli(*args: str, cwd: Path = REPO, env: dict | None = None) -> subprocess.CompletedProcess:
    return run_cli(*args, cwd=cwd, env=env, timeout=120)


def strict_validate(doc: dict) -> None:
    """Hera's model of Argo's Workflow reads `doc` and writes it back unchanged."""
    model = hera_models.Workflow.model_validate(doc)
    assert model.model_dump(by_alias=True, exclude_none=True, mode="json") == doc


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("argo") / "default.yaml"
    result = cli(
        "export",
        "argo",
        "default",
        "-p",
        "epochs=3",
        "-p",
        "train.learning_rate=0.0005",
        "--image",
        "registry.local/aidevops:1.4",
        "--tracking-uri",
        "http://mlflow.ml.svc:5000",
        "-o",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(out) and result.stderr == ""
    return yaml.safe_load(out.read_text())


def templates(doc: dict) -> dict[str, dict]:
    return {t["name"]: t for t in doc["spec"]["templates"]}


def tasks(doc: dict) -> dict[str, dict]:
    return {t["name"]: t for t in templates(doc)[doc["spec"]["entrypoint"]]["dag"]["tasks"]}


def test_the_export_is_a_valid_argo_workflow(exported):
    strict_validate(exported)
    assert (exported["apiVersion"], exported["kind"]) == ("argoproj.io/v1alpha1", "Workflow")
    assert exported["metadata"]["generateName"] == "default-"


def test_strict_validation_catches_mistakes(exported):
    import copy

    import pydantic

    typo = copy.deepcopy(exported)
    typo["spec"]["templates"][0]["container"]["imagePullPolcy"] = "Always"
    with pytest.raises(AssertionError):
        strict_validate(typo)
    wrong_type = copy.deepcopy(exported)
    wrong_type["spec"]["templates"][0]["container"]["args"] = "step"
    with pytest.raises(pydantic.ValidationError):
        strict_validate(wrong_type)


def test_the_dag_is_the_needs_graph(exported):
    spec = load_spec(REPO / "pipelines" / "default.yaml", REPO)
    dag = tasks(exported)
    assert list(dag) == list(spec.order)
    for name, step in spec.steps.items():
        assert sorted(dag[name].get("dependencies", [])) == sorted(step.needs), name
        assert dag[name]["template"] == name


def test_each_pod_gets_exactly_the_params_aidevops_run_gives_its_step(exported):
    spec = load_spec(REPO / "pipelines" / "default.yaml", REPO)
    runner = PipelineRunner(Workspace(REPO), spec, RunOptions(overrides={"epochs": 3, "train.learning_rate": 0.0005}))
    dag, tmpl = tasks(exported), templates(exported)
    for name in spec.order:
        given = {p["name"]: json.loads(p["value"]) for p in dag[name]["arguments"].get("parameters", [])}
        assert given == runner.resolved_params(name), name
        declared = [p["name"] for p in tmpl[name]["inputs"].get("parameters", [])]
        assert declared == list(given)
        args = tmpl[name]["container"]["args"]
        passed = [args[i + 1] for i, a in enumerate(args) if a == "-p"]
        assert passed == [f"{k}={{{{inputs.parameters.{k}}}}}" for k in given]
    train = {p["name"]: json.loads(p["value"]) for p in dag["train"]["arguments"]["parameters"]}
    assert train["epochs"] == 3 and train["learning_rate"] == 0.0005 and train["hidden"] == [256]
    prepare = {p["name"] for p in dag["prepare"]["arguments"]["parameters"]}
    assert "epochs" not in prepare and "dataset" in prepare
    register = {p["name"]: json.loads(p["value"]) for p in dag["register"]["arguments"]["parameters"]}
    assert register["gate"] == spec.gate and register["model_name"] == "digits-classifier"


def test_outputs_travel_as_artifacts_and_notebooks_are_kept(exported):
    spec = load_spec(REPO / "pipelines" / "default.yaml", REPO)
    dag, tmpl = tasks(exported), templates(exported)
    for name, step in spec.steps.items():
        container = tmpl[name]["container"]
        outputs = {a["name"]: a["path"] for a in tmpl[name]["outputs"]["artifacts"]}
        assert outputs == {"outputs": f"/work/run/{name}", "notebook": f"/work/run/{name}/{step.notebook.name}"}
        inputs = {a["name"]: a["path"] for a in tmpl[name]["inputs"].get("artifacts", [])}
        assert inputs == {dep: f"/work/run/{dep}" for dep in step.needs}
        passed = {a["name"]: a["from"] for a in dag[name]["arguments"].get("artifacts", [])}
        assert passed == {dep: f"{{{{tasks.{dep}.outputs.artifacts.outputs}}}}" for dep in step.needs}
        args = container["args"]
        assert args[:2] == ["step", f"notebooks/{step.notebook.name}"]
        assert [args[i + 1] for i, a in enumerate(args) if a == "--needs"] == list(step.needs)
        assert [args[i + 1] for i, a in enumerate(args) if a == "--output"] == list(step.outputs)
        assert container["command"] == ["aidevops"] and container["image"] == "registry.local/aidevops:1.4"
        assert {"name": "work", "mountPath": "/work"} in container["volumeMounts"]
    assert {"name": "work", "emptyDir": {}} in exported["spec"]["volumes"]


def test_the_tracking_uri_is_passed_in(exported):
    (param,) = exported["spec"]["arguments"]["parameters"]
    assert param == {"name": "mlflow-tracking-uri", "value": "http://mlflow.ml.svc:5000"}
    for tmpl in exported["spec"]["templates"]:
        if "container" in tmpl:
            env = {e["name"]: e["value"] for e in tmpl["container"]["env"]}
            assert env["MLFLOW_TRACKING_URI"] == "{{workflow.parameters.mlflow-tracking-uri}}"


def test_a_local_store_warns_and_uses_a_placeholder(tmp_path):
    result = cli("export", "argo", "ci")
    assert result.returncode == 0, result.stderr
    assert "--tracking-uri" in result.stderr and result.stderr.count("\n") == 1
    doc = yaml.safe_load(result.stdout)
    strict_validate(doc)
    assert list(tasks(doc)) == ["prepare", "train", "evaluate", "register"]


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["-p", "epochs=many"], "parameter 'epochs' expects an integer"),
        (["-p", "nope=1"], "unknown parameter 'nope'"),
        (["--image", "bad image"], "is not a container image reference"),
    ],
)
def test_bad_input_is_one_sentence_and_writes_nothing(tmp_path, args, fragment):
    out = tmp_path / "wf.yaml"
    result = cli("export", "argo", "default", "-o", str(out), *args)
    assert result.returncode != 0
    assert fragment in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert not out.exists()


def test_without_hera_the_error_names_the_install(tmp_path):
    code = (
        "import sys\n"
        "for name in ('hera', 'hera.workflows'):\n"
        "    sys.modules[name] = None\n"
        "from aidevops_ext.cli import main\n"
        "main()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, "export", "argo", "ci"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0 and result.stdout == ""
    assert 'pip install "aidevops-ext[argo]"' in result.stderr and "Traceback" not in result.stderr
