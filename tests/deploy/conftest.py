"""Deployment fixtures: a real MLflow registry with real versions, real supervised servers on 127.0.0.1.

The session registry (`dig`, four features, three classes) holds:
- v1 (alias `champion`) and v2: standardised MLP classifiers with reference profiles;
- v3: an MLP whose weights are NaN (it loads; its probabilities are NaN: the smoke test must refuse it);
- v4: a real model whose stored `.npz` was corrupted after registration (it fails to load).

Every deployment a test starts is stopped by a finalizer, and the session ends by asserting that no
process of the test workspace is left (CI must not leak servers).
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from aidevops_ext import registry, trainer
from aidevops_ext.monitoring.profile import build_profile
from aidevops_ext.workspace import Workspace
from tests.support.store import STORE_SETTINGS

MODEL = "dig"
FEATURES = ["a", "b", "c", "d"]
ENV_VARS = (*STORE_SETTINGS, "AIDEVOPS_SERVING_ADMIN_TOKEN", "AIDEVOPS_ACTOR")


def data(seed: int = 0, n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """Four features on different scales, three classes."""
    rng = np.random.default_rng(seed)
    X = (rng.normal(size=(n, 4)) * [1.0, 2.0, 5.0, 0.5] + [0.0, 1.0, 10.0, -3.0]).astype(np.float32)
    score = X[:, 0] + 0.5 * X[:, 1] - 0.1 * X[:, 2] + X[:, 3]
    return X, np.digitize(score, np.quantile(score, [1 / 3, 2 / 3]))


def _save(est, path: Path) -> Path:
    X, _ = data(0)
    profile = build_profile(X, FEATURES, predictions=est.predict(X))
    return trainer.save_model(est, path, profile=profile, metadata={"feature_names": FEATURES, "name": MODEL})


def _fit(seed: int, hidden=(8,), scaled: bool = True):
    X, y = data(seed)
    mlp = trainer.MLPClassifier(
        hidden_layer_sizes=hidden, epochs=15, batch_size=32, learning_rate=1e-2, random_state=seed, backend="numpy"
    )
    est = trainer.Scaled(mlp) if scaled else mlp
    est.fit(X, y, progress=False)
    return est


def _nan_model():
    est = _fit(2, scaled=False)
    spec, arrays = est._get_state()
    arrays = {k: np.full_like(v, np.nan) if v.dtype.kind == "f" else v for k, v in arrays.items()}
    return type(est)._from_state(spec, arrays)


def _log(ws: Workspace, path: Path) -> str:
    run = registry.connection.client(ws).create_run(registry.experiment_id(ws, "deploy-tests")).info.run_id
    return registry.log_model(ws, run, path, name=MODEL)["version"]


def _corrupt_stored_model(ws: Workspace, version: str) -> None:
    """Overwrite the registry's copy of a version's .npz with garbage (as a broken upload would leave it)."""
    c = registry.connection.client(ws)
    source = c.get_model_version(MODEL, version).source
    location = c.get_logged_model(source.split("/", 1)[1].lstrip("/")).artifact_location
    folder = Path(location.replace("file://", ""))
    files = sorted(folder.rglob("*.npz"))
    assert files, f"no .npz under {folder}"
    for f in files:
        f.write_bytes(b"PK\x03\x04 this is not a model file" * 10)


@dataclass
class Registry:
    """The session workspace and its registered versions."""

    ws: Workspace
    root: Path
    rows: list[list[float]]  # a few raw input rows for requests


def register_versions(ws: Workspace, broken: bool = True) -> None:
    """Register dig v1 (alias champion) and v2 in ws's registry; with `broken`, v3 (NaN) and v4 (corrupted) too.

    benchmarks/reliability.py builds its registry with this as well (broken=False).
    """
    registry.configure(ws)
    models = ws.root / "models"
    files = [_save(_fit(0), models / "v1.npz"), _save(_fit(1, (16,)), models / "v2.npz")]
    if broken:
        files += [
            trainer.save_model(_nan_model(), models / "v3.npz", metadata={"name": MODEL}),
            _save(_fit(3), models / "v4.npz"),
        ]
    versions = [_log(ws, f) for f in files]  # not inside an assert: python -O would skip the registering
    if versions != [str(i) for i in range(1, len(files) + 1)]:
        raise RuntimeError(f"expected a fresh registry, got versions {versions} for {MODEL}")
    if broken:
        _corrupt_stored_model(ws, "4")
    registry.set_alias(ws, MODEL, "champion", "1")


def request_rows() -> list[list[float]]:
    """A few raw input rows for requests."""
    X, _ = data(7, 20)
    return X.tolist()


def ready(url: str) -> bool:
    """Whether the server at url answers its readiness check now (tests and benchmarks/reliability.py)."""
    try:
        with urllib.request.urlopen(url + "/v2/health/ready", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


@pytest.fixture(scope="session")
def reg(tmp_path_factory) -> Registry:
    """dig v1..v4 in a fresh SQLite registry (the environment is set per test, by `deploy_env`)."""
    root = tmp_path_factory.mktemp("deploy-ws")
    ws = Workspace(root)
    with pytest.MonkeyPatch.context() as mp:
        _isolate(mp, root)
        register_versions(ws)
    yield Registry(ws, root, request_rows())
    from aidevops_ext.deploy import manager

    manager.undeploy_all(ws, reason="end of the test session")
    leaked = _processes_of(root)
    for pid in leaked:
        os.kill(pid, signal.SIGKILL)
    assert not leaked, f"deployment processes left running: {leaked}"


def _isolate(mp: pytest.MonkeyPatch, root: Path) -> None:
    for var in ENV_VARS:
        mp.delenv(var, raising=False)
    mp.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    mp.setenv("AIDEVOPS_HOME", str(root))
    mp.setenv("AIDEVOPS_ACTOR", "deploy-tests")
    mp.setenv("AIDEVOPS_DEPLOY_WATCH_PID", str(os.getpid()))  # supervisors stop if this session dies
    # MLflow's Default experiment writes to ./mlruns: work from the workspace so nothing lands elsewhere.
    mp.chdir(root)


@pytest.fixture(autouse=True)
def deploy_env(request, monkeypatch):
    """Every deploy test runs against the session registry's workspace, with nothing else leaking in."""
    if "reg" in request.fixturenames:
        _isolate(monkeypatch, request.getfixturevalue("reg").root)


def _processes_of(root: Path) -> list[int]:
    """Pids of supervisors and servers whose command line names this workspace."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"aidevops_ext.deploy.supervisor" in args or b"aidevops_ext.deploy.child" in args:
            if str(root).encode() in args:
                try:
                    state = (entry / "stat").read_bytes().rsplit(b")", 1)[-1].split()[0]
                except (OSError, IndexError):
                    state = b"?"
                if state not in (b"Z", b"X"):
                    found.append(int(entry.name))
    return found


@pytest.fixture
def deployer(reg):
    """deploy(ref, name, **kw) through the manager; every deployment it made is undeployed afterwards."""
    from aidevops_ext.deploy import manager

    names: list[str] = []

    def make(ref: str, name: str, **kw):
        names.append(name)
        return manager.deploy(reg.ws, ref, name=name, **kw)

    yield make
    for name in names:
        try:
            manager.undeploy(reg.ws, name, reason="test finished")
        except Exception:  # noqa: BLE001 - already stopped, or never started
            pass


# --------------------------------------------------------------------------- load generator


@dataclass
class LoadStats:
    """What a load generator saw."""

    sent: int = 0
    statuses: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    versions: Counter = field(default_factory=Counter)

    @property
    def non_2xx(self) -> int:
        return sum(n for s, n in self.statuses.items() if not 200 <= s < 300)


class LoadGenerator:
    """Concurrent requests (both protocols) on a background asyncio loop, until stopped (bounded in time and count)."""

    def __init__(
        self,
        url: str,
        model: str,
        rows: list[list[float]],
        concurrency: int = 4,
        max_seconds: float = 120.0,
        max_requests: int = 200_000,
    ) -> None:
        self.url, self.model, self.rows = url, model, rows
        self.concurrency, self.max_seconds, self.max_requests = concurrency, max_seconds, max_requests
        self.stats = LoadStats()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="load", daemon=True)

    def __enter__(self) -> LoadGenerator:
        self._thread.start()
        deadline = time.monotonic() + 30
        while self.stats.sent < 20 and time.monotonic() < deadline:  # running before the test acts
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(60)

    def wait_until(self, condition, timeout: float = 60.0) -> bool:
        """Whether condition(stats) came true within timeout: a generous deadline to wait for the load to get
        somewhere, never a speed requirement (how fast is measured by benchmarks/reliability.py)."""
        deadline = time.monotonic() + timeout
        while not condition(self.stats):
            if time.monotonic() >= deadline or not self._thread.is_alive():
                return condition(self.stats)
            time.sleep(0.01)
        return True

    async def _main(self) -> None:
        import httpx

        deadline = time.monotonic() + self.max_seconds
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        async with httpx.AsyncClient(base_url=self.url, timeout=30, limits=limits) as client:

            async def worker(i: int) -> None:
                n = 0
                while not self._stop.is_set() and time.monotonic() < deadline and self.stats.sent < self.max_requests:
                    rows = [self.rows[(i + n) % len(self.rows)], self.rows[(i + 2 * n) % len(self.rows)]]
                    n += 1
                    try:
                        if n % 2:
                            r = await client.post("/invocations", json={"inputs": rows})
                        else:
                            r = await client.post(
                                f"/v2/models/{self.model}/infer",
                                json={
                                    "inputs": [
                                        {
                                            "name": "input-0",
                                            "shape": [2, len(rows[0])],
                                            "datatype": "FP32",
                                            "data": rows,
                                        }
                                    ]
                                },
                            )
                            if r.status_code == 200:
                                self.stats.versions[r.json()["model_version"]] += 1
                        self.stats.statuses[r.status_code] += 1
                    except httpx.HTTPError as exc:
                        self.stats.errors[type(exc).__name__] += 1
                    self.stats.sent += 1

            await asyncio.gather(*(worker(i) for i in range(self.concurrency)))
