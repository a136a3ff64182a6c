"""Fixtures for the engines beyond one machine: a real MLflow tracking server, and the image's install in a venv.

`mlflow_server` is `mlflow server` on 127.0.0.1 with SQLite behind it and a local artifact folder it serves
(clients reach artifacts only through it). `image_venv` runs the Dockerfile's build-stage RUN command, as
written there, on what that stage's COPY instructions take from a fresh `git clone` of this repository, into
a new virtualenv (no container engine runs on CI machines); only `--no-cache-dir` is dropped, so pip's
download cache keeps this to about a minute. The runtime stage's COPYs make the steps' working folder.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.support.servers import free_port

DOCKERFILE = REPO / "Dockerfile"


def wait_http(url: str, seconds: float, proc: subprocess.Popen | None = None, log: Path | None = None) -> None:
    """Until `url` answers 200 (fails early, with the log's tail, if `proc` exits)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text()[-3000:] if log and log.exists() else ""
            pytest.fail(f"{proc.args[:4]} exited with {proc.returncode} before {url} answered:\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    pytest.fail(f"{url} did not answer within {seconds:.0f} s")


def stop(proc: subprocess.Popen) -> None:
    """Stop a process this test session started in its own session (it and its workers)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@dataclass(frozen=True)
class MlflowServer:
    url: str
    artifacts: Path  # the server's --artifacts-destination
    backend: Path  # its SQLite file


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory) -> MlflowServer:
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    log = root / "server.log"
    backend, artifacts = root / "mlflow.db", root / "artifacts"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
                "--backend-store-uri",
                f"sqlite:///{backend}",
                "--artifacts-destination",
                str(artifacts),
            ],
            cwd=root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_http(f"http://127.0.0.1:{port}/health", 180, proc, log)
        yield MlflowServer(f"http://127.0.0.1:{port}", artifacts, backend)
    finally:
        stop(proc)


def instructions(stage: str | None = None) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined; one stage when `stage` is given."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found, current = [], None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            match = re.search(r"\bAS\s+(\S+)", rest, re.IGNORECASE)
            current = match.group(1) if match else "final"
        if stage is None or current == stage:
            found.append((word, " ".join(rest.split())))
    return found


def image_env() -> dict[str, str]:
    """The runtime stage's ENV settings."""
    env: dict[str, str] = {}
    for word, rest in instructions("final"):
        if word == "ENV":
            for item in shlex.split(rest):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def copy_context(stage: str, source_root: Path, dest: Path) -> Path:
    """What a stage's COPY instructions (from the build context) put into its WORKDIR, at `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    for word, rest in instructions(stage):
        if word != "COPY" or rest.startswith("--from"):
            continue
        *sources, target = rest.split()
        for source in sources:
            src = source_root / source
            if src.is_dir():
                shutil.copytree(src, dest / target.rstrip("/"), dirs_exist_ok=True)
            else:
                folder = dest / target if target.endswith("/") else (dest / target).parent
                folder.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, folder / src.name if target.endswith("/") else dest / target)
    return dest


@dataclass(frozen=True)
class ImageVenv:
    clone: Path  # the fresh clone (the build context)
    app: Path  # /app of the runtime stage: what its COPY instructions put there (notebooks/, pipelines/)
    venv: Path  # /opt/aidevops of the image

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)

    def env(self, home: Path, **extra: str) -> dict[str, str]:
        """The container's environment: this machine's, less our settings, plus the image's ENV."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("MLFLOW_", "AIDEVOPS_", "VIRTUAL_ENV", "PYTHON", "JUPYTER"))
        }
        for key, value in image_env().items():
            if key == "PATH":
                value = value.replace("/opt/aidevops", str(self.venv)).replace("$PATH", os.environ["PATH"])
            env[key] = value
        env["AIDEVOPS_HOME"] = str(home)
        env.update(extra)
        return env


@pytest.fixture(scope="session")
def image_venv(tmp_path_factory) -> ImageVenv:
    root = tmp_path_factory.mktemp("image")
    clone, venv, dist = root / "src", root / "opt-aidevops", root / "dist"
    subprocess.run(["git", "clone", "--quiet", "--depth", "1", f"file://{REPO}", str(clone)], check=True, timeout=120)
    build = copy_context("build", clone, root / "build-src")  # exactly what the build stage sees
    (run,) = [rest for word, rest in instructions("build") if word == "RUN"]
    command = run.replace("/opt/aidevops", str(venv)).replace("/dist", str(dist)).replace(" --no-cache-dir", "")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHONHOME", "PIP_REQUIRE"))}
    out = subprocess.run(["bash", "-c", command], cwd=build, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, f"the Dockerfile's install failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}"
    return ImageVenv(clone, copy_context("final", clone, root / "app"), venv)
