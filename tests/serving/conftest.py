"""Model-server fixtures: a real MLflow registry with real model versions, and real servers on 127.0.0.1.

One SQLite registry per session (creating its tables costs seconds) holds:
- `abc`: aidevops MLP classifiers on three features named a, b, c (as in MLflow's docs payloads):
  v1 (alias champion), v2 (another fit), v3 a pyfunc returning NaN, v4 a pyfunc that fails to load;
- `sum`: a foreign pyfunc with a column signature (a, b, c doubles) returning each row's sum.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

from aidevops_ext import registry, trainer
from aidevops_ext.monitoring.profile import build_profile
from aidevops_ext.workspace import Workspace
from tests.support.servers import free_port, stop_process, wait_until_answering
from tests.support.store import STORE_SETTINGS

REPO = Path(__file__).resolve().parents[2]
FEATURES = ["a", "b", "c"]
ADMIN_TOKEN = "test-admin-token"
FEEDBACK_TOKEN = "test-feedback-token"
FEEDBACK_AUTH = {"Authorization": f"Bearer {FEEDBACK_TOKEN}"}  # headers of a /feedback request
_ENV_VARS = (*STORE_SETTINGS, "AIDEVOPS_SERVING_ADMIN_TOKEN", "AIDEVOPS_FEEDBACK_TOKEN", "AIDEVOPS_ALLOWED_HOSTS")


# The ci pipeline's drift rule (pipelines/ci.yaml): PSI above 0.25 on any feature, two windows running, retrains.
FEATURE_DRIFT_RETRAINS = {
    "name": "feature-drift",
    "metric": "psi",
    "op": ">",
    "threshold": 0.25,
    "any_feature": True,
    "for_windows": 2,
    "action": "retrain",
}


def data(seed: int = 0, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Three features, three classes."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3)).astype(np.float32) * np.array([1.0, 2.0, 5.0], np.float32) + np.array(
        [0, 1, 10], np.float32
    )
    score = X[:, 0] + 0.5 * X[:, 1] - 0.1 * X[:, 2]
    y = np.digitize(score, np.quantile(score, [1 / 3, 2 / 3]))
    return X, y


def fit_model(seed: int, hidden: tuple[int, ...] = (8,)) -> object:
    """A standardised MLP classifier, as the pipeline trains them."""
    X, y = data(seed)
    est = trainer.Scaled(
        trainer.MLPClassifier(
            hidden_layer_sizes=hidden, epochs=20, batch_size=32, learning_rate=1e-2, random_state=seed, backend="numpy"
        )
    )
    est.fit(X, y, progress=False)
    return est


def save(est, path: Path, name: str = "abc") -> Path:
    """A model file with the reference profile and feature names the server reads."""
    X, _ = data(0)
    profile = build_profile(X, FEATURES, predictions=est.predict(X))
    return trainer.save_model(est, path, profile=profile, metadata={"feature_names": FEATURES, "name": name})


@dataclass
class Registry:
    """The session's workspace and what was registered in it."""

    ws: Workspace
    root: Path
    model_file: Path  # abc v1's model file
    champion: object  # abc v1's estimator
    v2: object


def _run(ws: Workspace) -> str:
    exp = registry.experiment_id(ws, "serving-tests")
    return registry.connection.client(ws).create_run(exp).info.run_id


def _log_pyfunc(ws: Workspace, name: str, python_model, signature=None) -> str:
    import cloudpickle
    import mlflow

    from tests.serving import pyfunc_models

    cloudpickle.register_pickle_by_value(pyfunc_models)
    run_id = _run(ws)
    registry.configure(ws)
    with mlflow.start_run(run_id=run_id):
        info = mlflow.pyfunc.log_model(
            name="model", python_model=python_model, signature=signature, pip_requirements=[]
        )
    return registry.register_version(ws, info.model_uri, name, run_id=run_id, tags={})


@pytest.fixture(scope="session")
def reg(tmp_path_factory) -> Registry:
    """abc v1..v4 and sum v1 in a fresh SQLite registry."""
    import pandas as pd
    from mlflow.models import infer_signature

    from tests.serving.pyfunc_models import BrokenModel, NaNModel, SumModel

    root = tmp_path_factory.mktemp("serving-ws")
    with pytest.MonkeyPatch.context() as mp:  # setup only: MLflow's fluent API must not write to the repo
        for var in _ENV_VARS:
            mp.delenv(var, raising=False)
        mp.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        mp.chdir(root)
        ws = Workspace(root)
        v1, v2 = fit_model(0), fit_model(1, (16,))
        f1, f2 = save(v1, root / "models" / "abc-v1.npz"), save(v2, root / "models" / "abc-v2.npz")
        for f in (f1, f2):
            assert registry.log_model(ws, _run(ws), f, name="abc")["version"]
        frame = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0], "c": [5.0, 6.0]})
        sig = infer_signature(frame, np.array([9.0, 12.0]))
        assert _log_pyfunc(ws, "abc", NaNModel(), sig) == "3"
        assert _log_pyfunc(ws, "abc", BrokenModel(), sig) == "4"
        _log_pyfunc(ws, "sum", SumModel(), sig)
        registry.set_alias(ws, "abc", "champion", "1")
        registry.set_alias(ws, "sum", "champion", "1")
    # the working directory and environment are restored here: other test packages run after this one
    return Registry(ws, root, f1, v1, v2)


@dataclass
class RunningServer:
    """A `python -m aidevops_ext.serving` process on 127.0.0.1."""

    proc: subprocess.Popen
    url: str
    port: int
    log: Path

    def client(self, **kw) -> httpx.Client:
        """An HTTP client for this server."""
        return httpx.Client(base_url=self.url, timeout=30, **kw)

    def alive(self) -> bool:
        """Whether the process runs and answers /ping."""
        if self.proc.poll() is not None:
            return False
        try:
            return httpx.get(self.url + "/ping", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False


def server_env(reg: Registry, **extra: str) -> dict[str, str]:
    """The environment a test server runs with: the session workspace, no leaked MLflow settings."""
    env = {k: v for k, v in os.environ.items() if k not in _ENV_VARS}
    env.update(
        AIDEVOPS_HOME=str(reg.root),
        AIDEVOPS_SERVING_ADMIN_TOKEN=ADMIN_TOKEN,
        AIDEVOPS_FEEDBACK_TOKEN=FEEDBACK_TOKEN,
        PYTHONPATH=str(REPO),
        MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
        **extra,
    )
    return env


def start_server(reg: Registry, uri: str, *args: str, env: dict | None = None) -> RunningServer:
    """Start a server subprocess and wait until it answers /ping (or fails). The session registry is the
    tests' own, so its cloudpickled models are allowed."""
    port = free_port()
    log = reg.root / f"server-{port}.log"
    cmd = [sys.executable, "-m", "aidevops_ext.serving", uri, "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(
        [*cmd, "--allow-pickle", *args],
        cwd=reg.root,
        env=env or server_env(reg),
        stdout=open(log, "wb"),
        stderr=subprocess.STDOUT,
    )
    server = RunningServer(proc, f"http://127.0.0.1:{port}", port, log)
    wait_until_answering(server.url + "/ping", proc, log, seconds=90, what="the model server")
    return server


def stop_server(server: RunningServer) -> None:
    """Terminate the process we started (by its own handle) and wait for it."""
    stop_process(server.proc)


@pytest.fixture(scope="session")
def server(reg) -> RunningServer:
    """One real server for `models:/abc@champion`, shared by the HTTP tests that do not change its slots."""
    s = start_server(reg, "models:/abc@champion", "--follow-alias", "0")
    yield s
    stop_server(s)


@pytest.fixture
def http(server) -> httpx.Client:
    """An httpx client for the shared server."""
    with server.client() as c:
        yield c


@pytest.fixture(scope="session")
def app_factory(reg):
    """Build in-process apps (Starlette TestClient) over the session registry."""
    from aidevops_ext.serving import ServingConfig
    from aidevops_ext.serving.app import create_app
    from aidevops_ext.serving.requestlog import RequestLog
    from aidevops_ext.serving.slots import ModelSlots

    def make(
        uri: str = "models:/abc@champion",
        *,
        db: Path | None = None,
        monitor=None,
        deployment=None,
        allow_pickle: bool = True,  # the session registry is the tests' own
        **config,
    ):
        with pytest.MonkeyPatch.context() as mp:
            for var in _ENV_VARS:
                mp.delenv(var, raising=False)
            # TestClient sends Host: testserver, a name the app must be told about
            defaults = {
                "admin_token": ADMIN_TOKEN,
                "feedback_token": FEEDBACK_TOKEN,
                "allowed_hosts": ("testserver",),
                "follow_alias_seconds": 0,
            }
            cfg = ServingConfig(**{**defaults, **config})
            slots = ModelSlots.from_uri(uri, reg.ws, allow_pickle=allow_pickle)
            log = RequestLog(db, cfg) if db is not None else RequestLog(None, cfg)
            return create_app(slots, cfg, log, monitor=monitor, deployment=deployment)

    return make


def monitor_pass(app) -> dict:
    """What the in-process app's monitor makes of the request log now (flushed first): one pass, its summary."""
    server = app.state.server
    server.requestlog.flush()
    return server.monitor.refresh()


@pytest.fixture(scope="session")
def client(app_factory):
    """An in-process TestClient for abc@champion (no request log)."""
    from starlette.testclient import TestClient

    with TestClient(app_factory(), raise_server_exceptions=True) as c:
        yield c
