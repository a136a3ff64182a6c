"""Remote tracking: a real `mlflow server` on 127.0.0.1 (SQLite behind it, a local artifact root it serves).

With MLFLOW_TRACKING_URI pointing at it, `aidevops run ci` runs end to end and the registry, the gate and a
deployment all go through the server: the workspace keeps no MLflow store of its own. The image's commands
then run against the same server from a fresh virtualenv built by the Dockerfile's RUN command:
`aidevops serve models:/ci-digits@champion` pulls the model from the server at start, and the steps of
`aidevops export argo ci` run pod by pod (each in its own folder, upstream outputs copied in as Argo
would place its artifacts), registering a second version through the server.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml

from tests.beyond.conftest import free_port, stop, wait_http
from tests.support.cli import run_cli
from tests.support.projects import copy_project

MODEL = "ci-digits"


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return copy_project(tmp_path_factory.mktemp("remote-project"))


def aidevops(root: Path, server, *args: str, timeout: int = 400) -> subprocess.CompletedProcess:
    settings = {
        "MLFLOW_TRACKING_URI": server.url,
        "MPLBACKEND": "Agg",
        "AIDEVOPS_ACTOR": "remote-tests",
        "AIDEVOPS_DEPLOY_WATCH_PID": str(os.getpid()),  # a killed test session leaks no server
    }
    return run_cli(*args, cwd=root, env=settings, timeout=timeout)


def client(server):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=server.url, registry_uri=server.url)


@pytest.fixture(scope="module")
def ci_run(project, mlflow_server) -> dict:
    out = aidevops(project, mlflow_server, "run", "ci")
    assert out.returncode == 0, out.stderr[-3000:]
    show = aidevops(project, mlflow_server, "show", "latest", "--json")
    assert show.returncode == 0, show.stderr
    return json.loads(show.stdout)


def test_the_ci_pipeline_runs_through_the_server(project, mlflow_server, ci_run):
    assert ci_run["status"] == "succeeded" and {s["status"] for s in ci_run["steps"].values()} == {"ran"}
    c = client(mlflow_server)
    parent = c.get_run(ci_run["mlflow"]["run_id"])
    assert parent.data.tags["aidevops.run_id"] == ci_run["run_id"]
    train = c.get_run(ci_run["steps"]["train"]["mlflow_run_id"])
    assert train.info.artifact_uri.startswith("mlflow-artifacts:"), "artifacts go through the server"
    assert [a.path for a in c.list_artifacts(train.info.run_id, "notebooks")] == ["notebooks/02_train.ipynb"]
    assert list(mlflow_server.artifacts.rglob("02_train.ipynb")), "the server stored the executed notebook"
    # The registry and the gate's decision live on the server.
    registration = json.loads(Path(ci_run["run_dir"], "register", "registration.json").read_text())
    assert registration["gate_passed"] and registration["champion_moved"]
    assert c.get_registered_model(MODEL).aliases["champion"] == registration["version"]
    version = c.get_model_version(MODEL, registration["version"])
    assert version.tags["aidevops.pipeline_run_id"] == ci_run["run_id"]
    assert list(mlflow_server.artifacts.rglob("*.npz")), "the model file is in the server's artifact root"
    # Nothing of MLflow's was kept in the workspace.
    state = project / ".aidevops"
    assert not (state / "mlflow.db").exists() and not (project / "mlruns").exists()
    assert not any(p.is_file() for p in (state / "mlartifacts").rglob("*"))
    assert "ci-digits" in aidevops(project, mlflow_server, "models").stdout


@pytest.fixture(scope="module")
def deployed(project, mlflow_server, ci_run):
    out = aidevops(project, mlflow_server, "deploy", f"{MODEL}@champion", "--name", "remote-digits", "--json")
    try:
        assert out.returncode == 0, out.stderr[-3000:]
        yield json.loads(out.stdout)
    finally:
        undo = aidevops(project, mlflow_server, "undeploy", "remote-digits", "--reason", "test finished")
        assert undo.returncode == 0 or "no deployment" in undo.stderr.lower(), undo.stderr


def rows(count: int = 3) -> list[list[float]]:
    from sklearn.datasets import load_digits

    return load_digits().data[:count].tolist()


def test_the_champion_deploys_from_the_server(deployed, ci_run):
    registration = json.loads(Path(ci_run["run_dir"], "register", "registration.json").read_text())
    assert deployed["version"] == registration["version"] and deployed["verified"] is True
    url = deployed["deployment"]["url"]
    answer = httpx.post(f"{url}/invocations", json={"inputs": rows()}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["predictions"]) == 3


def test_the_image_serves_the_champion_pulled_from_the_server(image_venv, mlflow_server, deployed, tmp_path):
    port = free_port()
    # The image's entry with the manifests' arguments; --host 0.0.0.0 is for containers, here loopback.
    command = [
        image_venv.bin("aidevops"),
        "serve",
        f"models:/{MODEL}@champion",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    env = image_venv.env(tmp_path / "home", MLFLOW_TRACKING_URI=mlflow_server.url, AIDEVOPS_PORT=str(port))
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            command, cwd=image_venv.app, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_http(f"http://127.0.0.1:{port}/health", 120, proc, log)
        health = subprocess.run(
            [image_venv.bin("python"), "-m", "aidevops_ext.export.healthcheck"], env=env, timeout=30
        )
        assert health.returncode == 0, "the image's HEALTHCHECK passes"
        answer = httpx.post(f"http://127.0.0.1:{port}/invocations", json={"inputs": rows()}, timeout=30)
        reference = httpx.post(f"{deployed['deployment']['url']}/invocations", json={"inputs": rows()}, timeout=30)
        assert answer.status_code == 200 and answer.json()["predictions"] == reference.json()["predictions"]
        ready = httpx.get(f"http://127.0.0.1:{port}/v2/models/{MODEL}", timeout=30).json()
        assert ready["name"] == MODEL
    finally:
        stop(proc)


def _substitute(text: str, values: dict[str, str]) -> str:
    def value(match: re.Match) -> str:
        assert match.group(1) in values, f"unresolved Argo expression {match.group(0)}"
        return values[match.group(1)]

    return re.sub(r"\{\{\s*([^}]+?)\s*\}\}", value, text)


def test_the_exported_argo_steps_run_pod_by_pod(image_venv, mlflow_server, ci_run, tmp_path):
    """Each DAG task as Argo would run it: its container args and env, its own /work, artifacts copied in."""
    out = run_cli("export", "argo", "ci", "--tracking-uri", mlflow_server.url, cwd=image_venv.clone, timeout=120)
    assert out.returncode == 0, out.stderr
    workflow = yaml.safe_load(out.stdout)
    templates = {t["name"]: t for t in workflow["spec"]["templates"]}
    dag = templates[workflow["spec"]["entrypoint"]]["dag"]["tasks"]
    globals_ = {f"workflow.parameters.{p['name']}": p["value"] for p in workflow["spec"]["arguments"]["parameters"]}
    globals_["workflow.name"] = "ci-x7k2p"
    produced: dict[str, Path] = {}  # "tasks.NAME.outputs.artifacts.ART" -> path in that task's pod
    versions_before = {v.version for v in client(mlflow_server).search_model_versions(f"name='{MODEL}'")}
    for task in dag:
        template = templates[task["template"]]
        container = template["container"]
        pod = tmp_path / task["name"]  # this pod's filesystem root for /work
        values = dict(globals_)
        values.update(
            {f"inputs.parameters.{p['name']}": p["value"] for p in task.get("arguments", {}).get("parameters", [])}
        )
        given = {a["name"]: a["from"] for a in task.get("arguments", {}).get("artifacts", [])}
        for artifact in template.get("inputs", {}).get("artifacts", []):
            source = produced[given[artifact["name"]].strip("{} ")]
            shutil.copytree(source, pod / artifact["path"].removeprefix("/work/"))

        def local(text: str, pod: Path = pod) -> str:
            return text.replace("/work", str(pod))

        args = [local(_substitute(a, values)) for a in container["args"]]
        env = image_venv.env(
            pod / "home", **{e["name"]: local(_substitute(e["value"], values)) for e in container["env"]}
        )
        assert container["workingDir"] == "/app"
        run = subprocess.run(
            [image_venv.bin(container["command"][0]), *args],
            cwd=image_venv.app,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode == 0, f"task {task['name']}: {run.stderr[-3000:]}"
        for artifact in template["outputs"]["artifacts"]:
            path = Path(local(artifact["path"]))
            assert path.exists(), f"{task['name']} did not produce its artifact {artifact['name']} at {path}"
            produced[f"tasks.{task['name']}.outputs.artifacts.{artifact['name']}"] = path
    notebook = json.loads(produced["tasks.train.outputs.artifacts.notebook"].read_text())
    assert notebook["metadata"]["papermill"]["parameters"]["epochs"] == 8, "the resolved params reached the notebook"
    registration = json.loads((produced["tasks.register.outputs.artifacts.outputs"] / "registration.json").read_text())
    assert registration["version"] not in versions_before
    c = client(mlflow_server)
    version = c.get_model_version(MODEL, registration["version"])
    assert version.tags["aidevops.pipeline_run_id"] == "ci-x7k2p"
    assert (
        version.tags["aidevops.git_commit"]
        == subprocess.run(
            ["git", "-C", str(image_venv.clone), "rev-parse", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
    )
    assert version.tags["aidevops.data_hash"] != "unknown"
    assert version.tags["gate.passed"] == str(registration["gate_passed"]).lower(), "the gate went through the server"
    assert set(c.get_registered_model(MODEL).aliases) >= {"champion", "challenger"}
