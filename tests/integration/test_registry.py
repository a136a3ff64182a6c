"""The MLflow layer against a real SQLite MLflow store: runs, pyfunc models, versions, aliases, the gate."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import mlflow
import numpy as np
import pytest

from aidevops_ext import registry, trainer
from aidevops_ext.errors import ConfigError
from aidevops_ext.gate import evaluate_gate, parse_gate
from aidevops_ext.workspace import Workspace
from tests.support.store import mlflow_serve_command, module_store

EXPERIMENT = "registry-tests"
GATE = parse_gate({"accuracy": {"threshold": 0.6, "min_absolute_change": -0.01}})


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """One SQLite store for the module (creating its tables costs a couple of seconds)."""
    # It works from the workspace: a stray write to ./mlruns would show up there (and is asserted against below).
    with module_store(tmp_path_factory.mktemp("ws")) as workspace:
        yield workspace


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 6)).astype(np.float32)
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(np.int64)
    return X[:400], y[:400], X[400:], y[400:]


def _fit(data, *, shuffle_labels: bool = False, epochs: int = 30):
    X, y, _, _ = data
    if shuffle_labels:  # a model that learned nothing: about chance accuracy
        y = np.random.default_rng(1).permutation(y)
    est = trainer.MLPClassifier(
        hidden_layer_sizes=(8,), epochs=epochs, batch_size=32, learning_rate=1e-2, random_state=0, backend="numpy"
    )
    est.fit(X, y, progress=False)
    return est


@pytest.fixture(scope="module")
def good(data):
    return _fit(data)


@pytest.fixture(scope="module")
def bad(data):
    return _fit(data, shuffle_labels=True, epochs=3)


def _runs(ws: Workspace) -> tuple[str, str]:
    parent = registry.start_pipeline_run(
        ws, EXPERIMENT, "default", {"epochs": 30, "layers": [8]}, {"git.commit": "abc123"}
    )
    step = registry.start_step_run(ws, parent, "register", {"model_name": "m"}, {})
    return parent, step


def _logged(ws: Workspace, est, tmp_path: Path, name: str, data) -> tuple[str, str, dict]:
    """Log + register one model as the pipeline would; returns (version, step run id, metrics)."""
    _, _, X_test, y_test = data
    parent, step = _runs(ws)
    path = trainer.save_model(est, tmp_path / f"{name}.npz", metadata={"name": name})
    info = registry.log_model(ws, step, path)
    metrics = {"accuracy": float(est.score(X_test, y_test))}
    lineage = {
        "aidevops.pipeline_run": parent,
        "git.commit": "abc123",
        "data.hash": "sha256:00ff",
        "notebooks": "runs:/x/notebooks",
    }
    version = registry.register_version(ws, info["model_uri"], name, run_id=step, tags=lineage, metrics=metrics)
    return version, step, metrics


def _gate(ws: Workspace, name: str, version: str, metrics: dict, step: str) -> tuple[bool, object]:
    champion = registry.alias_version(ws, name, "champion")
    champion_metrics = registry.version_metrics(ws, name, champion) if champion else None
    decision = evaluate_gate(GATE, metrics, champion_metrics, champion)
    return registry.promote_if_passing(ws, name, version, decision, run_id=step), decision


# --- runs -------------------------------------------------------------------------------


def test_pipeline_and_step_runs(ws):
    parent, step = _runs(ws)
    c = mlflow.MlflowClient()
    p, s = c.get_run(parent), c.get_run(step)
    assert p.info.status == "RUNNING" and p.data.params == {"epochs": "30", "layers": "[8]"}
    assert p.data.tags["git.commit"] == "abc123"
    assert s.data.tags["mlflow.parentRunId"] == parent and s.data.tags["aidevops.step"] == "register"
    assert s.info.experiment_id == p.info.experiment_id == registry.experiment_id(ws, EXPERIMENT)
    exp = c.get_experiment(p.info.experiment_id)
    assert exp.artifact_location == ws.artifact_location
    registry.end_run(step, "FAILED")
    registry.end_run(parent, "KILLED", ws=ws)
    assert c.get_run(step).info.status == "FAILED" and c.get_run(parent).info.status == "KILLED"
    with pytest.raises(ConfigError, match="status"):
        registry.end_run(step, "DONE")
    with pytest.raises(ConfigError, match="does not exist"):
        registry.start_step_run(ws, "0" * 32, "train", {}, {})
    assert mlflow.active_run() is None


def test_log_artifacts_files_and_folders(ws, tmp_path):
    _, step = _runs(ws)
    (tmp_path / "train.ipynb").write_text("{}")
    (tmp_path / "outputs").mkdir()
    (tmp_path / "outputs" / "split.json").write_text("[]")
    registry.log_artifacts(step, [tmp_path / "train.ipynb", tmp_path / "outputs"], "notebooks")
    c = mlflow.MlflowClient()
    assert sorted(a.path for a in c.list_artifacts(step, "notebooks")) == ["notebooks/outputs", "notebooks/train.ipynb"]
    assert [a.path for a in c.list_artifacts(step, "notebooks/outputs")] == ["notebooks/outputs/split.json"]
    with pytest.raises(ConfigError, match="no such file"):
        registry.log_artifacts(step, [tmp_path / "missing.txt"], "x")


def test_step_run_resumes_the_runners_run_and_leaves_it_open(ws):
    _, step = _runs(ws)
    with registry.step_run(ws, step, EXPERIMENT, "train") as run:
        assert run.info.run_id == step
        mlflow.log_metric("loss", 0.5, step=1)
    assert mlflow.active_run() is None
    got = mlflow.MlflowClient().get_run(step)
    assert got.info.status == "RUNNING"  # the runner ends it
    assert got.data.metrics["loss"] == 0.5


def test_step_run_standalone_is_created_and_ended(ws):
    with registry.step_run(ws, None, "interactive", "explore") as run:
        mlflow.log_param("lr", 0.1)
    c = mlflow.MlflowClient()
    got = c.get_run(run.info.run_id)
    assert got.info.status == "FINISHED" and got.info.run_name == "explore"
    assert c.get_experiment(got.info.experiment_id).name == "interactive"
    with pytest.raises(RuntimeError):
        with registry.step_run(ws, None, "interactive", "broken") as run:
            raise RuntimeError("cell failed")
    assert c.get_run(run.info.run_id).info.status == "FAILED"
    assert mlflow.active_run() is None


# --- models, versions, aliases ---------------------------------------------------------------


def test_log_register_and_alias(ws, good, data, tmp_path):
    version, step, _ = _logged(ws, good, tmp_path, "alias-model", data)
    assert version == "1"
    assert registry.alias_version(ws, "alias-model", "champion") is None
    registry.set_alias(ws, "alias-model", "champion", version)
    assert registry.alias_version(ws, "alias-model", "champion") == "1"
    mv = mlflow.MlflowClient().get_model_version("alias-model", "1")
    assert mv.run_id == step
    assert mv.tags["git.commit"] == "abc123" and mv.tags["data.hash"] == "sha256:00ff"
    registry.delete_alias(ws, "alias-model", "champion")
    assert registry.alias_version(ws, "alias-model", "champion") is None
    with pytest.raises(ConfigError, match="no alias 'champion'"):
        registry.delete_alias(ws, "alias-model", "champion")
    with pytest.raises(ConfigError, match="no version 7"):
        registry.set_alias(ws, "alias-model", "champion", 7)


def test_logged_model_lives_in_the_run_and_workspace(ws, good, data, tmp_path):
    _, step, _ = _logged(ws, good, tmp_path, "where-model", data)
    c = mlflow.MlflowClient()
    run = c.get_run(step)
    outputs = run.outputs.model_outputs
    assert len(outputs) == 1
    logged = c.get_logged_model(outputs[0].model_id)
    assert logged.experiment_id == run.info.experiment_id
    assert logged.source_run_id == step and str(logged.status) == "READY"
    # Nothing under MLflow's default ./mlruns, no stray runs in the Default experiment.
    assert not (ws.root / "mlruns").exists()
    assert c.search_runs(["0"]) == []
    assert Path(logged.artifact_location.removeprefix("file://")).is_relative_to(ws.artifacts_dir)


def test_pyfunc_champion_predicts_like_the_estimator(ws, good, data, tmp_path):
    import pandas as pd

    version, _, _ = _logged(ws, good, tmp_path, "served-model", data)
    registry.set_alias(ws, "served-model", "champion", version)
    model = mlflow.pyfunc.load_model("models:/served-model@champion")
    _, _, X_test, _ = data
    expected = good.predict(X_test)
    np.testing.assert_array_equal(model.predict(X_test), expected)
    np.testing.assert_array_equal(model.predict(pd.DataFrame(X_test)), expected)
    inputs = model.metadata.get_input_schema()
    assert inputs.is_tensor_spec()
    (spec,) = inputs.inputs
    assert spec.type == np.dtype("float32") and spec.shape == (-1, X_test.shape[1])
    flavor = model.metadata.flavors["python_function"]
    assert flavor["loader_module"] == "aidevops_ext.pyfunc_model"
    assert flavor["data"].endswith(".npz")
    # No pickled Python object anywhere in the logged model.
    local = Path(
        mlflow.artifacts.download_artifacts(artifact_uri="models:/served-model@champion", dst_path=str(tmp_path / "dl"))
    )
    assert not [p for p in local.rglob("*") if p.suffix in (".pkl", ".pickle", ".cloudpickle")]


def test_load_alias_model(ws, good, data, tmp_path):
    assert registry.load_alias_model(ws, "never-registered") is None
    version, _, _ = _logged(ws, good, tmp_path, "loaded-model", data)
    assert registry.load_alias_model(ws, "loaded-model") is None  # registered, no champion yet
    registry.set_alias(ws, "loaded-model", "champion", version)
    est = registry.load_alias_model(ws, "loaded-model")
    _, _, X_test, _ = data
    np.testing.assert_array_equal(est.predict(X_test), good.predict(X_test))
    assert est.registered_model_ == {"name": "loaded-model", "version": version, "alias": "champion"}
    assert est.metadata_ == {"name": "loaded-model"}


# --- the gate -----------------------------------------------------------------------------


def test_first_version_passes_and_becomes_champion(ws, good, data, tmp_path):
    version, step, metrics = _logged(ws, good, tmp_path, "gated", data)
    moved, decision = _gate(ws, "gated", version, metrics, step)
    assert moved and decision.passed and decision.champion is None
    assert registry.alias_version(ws, "gated", "champion") == version
    assert registry.alias_version(ws, "gated", "challenger") == version
    c = mlflow.MlflowClient()
    tags = c.get_model_version("gated", version).tags
    assert tags["gate.passed"] == "true"
    assert c.get_run(step).data.tags["gate.passed"] == "true"
    assert sorted(a.path for a in c.list_artifacts(step, "gate")) == ["gate/decision.json", "gate/decision.md"]


def test_worse_version_fails_the_gate_and_champion_stays(ws, good, bad, data, tmp_path):
    first, step1, _ = _logged(ws, good, tmp_path, "guarded", data)
    assert _gate(ws, "guarded", first, _logged_metrics(ws, "guarded", first), step1)[0]
    second, step2, metrics = _logged(ws, bad, tmp_path, "guarded", data)
    moved, decision = _gate(ws, "guarded", second, metrics, step2)
    assert not moved and not decision.passed
    assert decision.champion_version == first
    assert registry.alias_version(ws, "guarded", "champion") == first
    assert registry.alias_version(ws, "guarded", "challenger") == second
    c = mlflow.MlflowClient()
    tags = c.get_model_version("guarded", second).tags
    assert tags["gate.passed"] == "false"
    assert tags["gate.champion_version"] == first
    assert "accuracy" in tags["gate.reasons"]
    md = Path(
        mlflow.artifacts.download_artifacts(
            run_id=step2, artifact_path="gate/decision.md", dst_path=str(tmp_path / "md")
        )
    ).read_text()
    assert md.startswith("# Quality gate: FAILED") and f"champion version {first}" in md
    stored = json.loads(
        Path(
            mlflow.artifacts.download_artifacts(
                run_id=step2, artifact_path="gate/decision.json", dst_path=str(tmp_path / "js")
            )
        ).read_text()
    )
    assert stored["passed"] is False and stored["champion_version"] == first
    # The champion's pyfunc is still the good model.
    _, _, X_test, _ = data
    np.testing.assert_array_equal(
        mlflow.pyfunc.load_model("models:/guarded@champion").predict(X_test), good.predict(X_test)
    )


def _logged_metrics(ws, name, version):
    return registry.version_metrics(ws, name, version)


def test_better_version_moves_champion_and_remembers_the_previous(ws, good, data, tmp_path):
    first, step1, metrics1 = _logged(ws, good, tmp_path, "improving", data)
    assert _gate(ws, "improving", first, metrics1, step1)[0]
    second, step2, metrics2 = _logged(ws, good, tmp_path, "improving", data)
    decision = evaluate_gate(
        GATE, {"accuracy": metrics2["accuracy"] + 0.01}, registry.version_metrics(ws, "improving", first), first
    )
    assert registry.promote_if_passing(ws, "improving", second, decision, run_id=step2)
    assert registry.alias_version(ws, "improving", "champion") == second
    tags = mlflow.MlflowClient().get_model_version("improving", second).tags
    assert tags["aidevops.previous_champion"] == first


def test_stale_decision_is_refused(ws, good, data, tmp_path):
    first, step1, metrics = _logged(ws, good, tmp_path, "raced", data)
    second, step2, _ = _logged(ws, good, tmp_path, "raced", data)
    stale = evaluate_gate(GATE, metrics)  # judged while there was no champion
    assert registry.promote_if_passing(ws, "raced", first, evaluate_gate(GATE, metrics), run_id=step1)
    with pytest.raises(ConfigError, match="champion is now v1"):
        registry.promote_if_passing(ws, "raced", second, stale, run_id=step2)
    assert "gate.passed" not in mlflow.MlflowClient().get_model_version("raced", second).tags


def test_version_metrics_and_listing(ws, good, bad, data, tmp_path):
    first, step1, metrics1 = _logged(ws, good, tmp_path, "listed", data)
    mlflow.MlflowClient().log_metric(step1, "train_seconds", 1.5)
    _gate(ws, "listed", first, metrics1, step1)
    second, step2, metrics2 = _logged(ws, bad, tmp_path, "listed", data)
    _gate(ws, "listed", second, metrics2, step2)
    assert registry.version_metrics(ws, "listed", first) == {**metrics1, "train_seconds": 1.5}
    (row,) = registry.list_models(ws, "listed")
    assert row["name"] == "listed" and row["aliases"] == {"champion": first, "challenger": second}
    v2, v1 = row["versions"]
    assert (v1["version"], v2["version"]) == (first, second)
    assert v1["aliases"] == ["champion"] and v2["aliases"] == ["challenger"]
    assert v1["gate_passed"] is True and v2["gate_passed"] is False
    assert v1["metrics"]["accuracy"] == pytest.approx(metrics1["accuracy"])
    assert v1["run_id"] == step1 and v1["created"].endswith("+00:00")
    assert v1["tags"]["git.commit"] == "abc123" and not any(k.startswith("gate.") for k in v1["tags"])
    json.dumps(row)  # what the CLI and the panels serialize
    names = [m["name"] for m in registry.list_models(ws)]
    assert "listed" in names and names == sorted(names)


def test_unknown_names_are_one_sentence_errors(ws, good, data, tmp_path):
    _logged(ws, good, tmp_path, "known-model", data)
    with pytest.raises(ConfigError) as info:
        registry.list_models(ws, "no-such-model")
    assert "no-such-model" in str(info.value) and "known-model" in str(info.value)
    with pytest.raises(ConfigError, match="no-such-model"):
        registry.set_alias(ws, "no-such-model", "champion", 1)
    with pytest.raises(ConfigError, match="no version 99"):
        registry.version_metrics(ws, "known-model", 99)
    with pytest.raises(ConfigError, match="does not exist"):
        registry.log_model(ws, "f" * 32, tmp_path / "known-model.npz")
    assert registry.alias_version(ws, "no-such-model", "champion") is None


# --- unreachable servers ----------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_tracking_server_fails_fast(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{_closed_port()}")
    other = Workspace(tmp_path)
    start = time.monotonic()
    with pytest.raises(ConfigError, match="unreachable: start it or unset MLFLOW_TRACKING_URI"):
        registry.configure(other)
    with pytest.raises(ConfigError, match="unreachable"):
        registry.list_models(other)
    assert time.monotonic() - start < 10
    assert not (tmp_path / ".aidevops").exists()


def test_silent_tracking_server_times_out(monkeypatch, tmp_path):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)  # accepts connections, never answers
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{server.getsockname()[1]}")
        start = time.monotonic()
        with pytest.raises(ConfigError, match="unreachable"):
            registry.check_tracking(Workspace(tmp_path), timeout=1.0)
        assert time.monotonic() - start < 10
    finally:
        server.close()


# --- MLflow's own scoring server ---------------------------------------------------------------


@pytest.mark.slow
def test_mlflow_models_serve_scores_the_champion(ws, good, data, tmp_path):
    import os
    import signal
    import subprocess
    import urllib.request

    version, _, _ = _logged(ws, good, tmp_path, "mlflow-served", data)
    registry.set_alias(ws, "mlflow-served", "champion", version)
    port = _closed_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": ws.tracking_uri, "MLFLOW_REGISTRY_URI": ws.registry_uri}
    cmd = mlflow_serve_command("models:/mlflow-served@champion", port)
    log = tmp_path / "serve.log"
    with log.open("wb") as out:  # a file, not a pipe nobody drains
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(base + "/ping", timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, log.read_text()[-2000:]
                assert time.monotonic() < deadline, "mlflow models serve did not come up"
                time.sleep(0.3)
        _, _, X_test, _ = data
        rows = X_test[:5]
        for body in ({"inputs": rows.tolist()}, {"dataframe_split": {"data": rows.tolist()}}):
            req = urllib.request.Request(
                base + "/invocations", json.dumps(body).encode(), {"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(req, timeout=10) as resp:
                got = json.loads(resp.read())["predictions"]
            assert got == good.predict(rows).tolist()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the CLI's process group: it and its uvicorn child
        proc.wait(timeout=30)
