"""Binder's first run, done the way repo2docker does it, in a fresh virtual environment on a fresh clone.

repo2docker builds from a git commit: so does this test (`git clone` of HEAD into a temporary folder; nothing is
written into this repository). It creates a new virtualenv (standing in for binder/environment.yml's conda
environment; Node.js comes from this machine), runs `binder/postBuild` there (pip install -e . builds the
JupyterLab extension: a few minutes, with pip's cache), then starts the notebook server the way Binder does,
wrapped by `binder/start`, and reads the panels' REST API with token auth: the seeded model with its champion,
the healthy deployment, the CI run, and the simulated traffic arriving in the monitor.

Jupyter's user folders are private to the test, so nothing installed for this machine's own venv (kernels,
settings) leaks in. Everything started — the deployment's supervisor and server (tied to this pytest process by
AIDEVOPS_DEPLOY_WATCH_PID and undeployed at the end), binder/traffic, the notebook server — is stopped at the
end, failure or not, and the last test asserts that nothing is left.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tests.beyond.conftest import free_port
from tests.conftest import REPO

pytestmark = pytest.mark.slow

MODEL = NAME = "ci-digits"
BINDER = REPO / "binder"
# binder/traffic's segment lengths, shortened so one cycle (in distribution, then drifted) fits in the test;
# its rate and the warm-up burst are Binder's own.
SHORT_CYCLE = {"AIDEVOPS_BINDER_NORMAL_S": "10", "AIDEVOPS_BINDER_DRIFT_S": "4"}


def node_ok(version: str) -> bool:
    """The rule binder/postBuild applies: rspack 2 (the extension's bundler) needs Node ^20.19 or >= 22.12."""
    major, minor = (int(v) for v in version.lstrip("v").split(".")[:2])
    return (major == 20 and minor >= 19) or (major == 22 and minor >= 12) or major > 22


# --------------------------------------------------------------------------- the configuration itself


def test_the_binder_folder_is_complete_and_declares_a_node_that_builds_the_extension():
    for script in ("postBuild", "start", "traffic"):
        path = BINDER / script
        assert path.is_file() and os.access(path, os.X_OK), f"binder/{script} must exist and be executable"
        assert path.read_text().startswith("#!/usr/bin/env bash\n")
        out = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
    env = yaml.safe_load((BINDER / "environment.yml").read_text())
    deps = [d for d in env["dependencies"] if isinstance(d, str)]
    (node,) = [d for d in deps if d.split()[0].split("=")[0] == "nodejs"]
    lowest = node.split(">=")[1].split(",")[0].strip()
    assert node_ok(lowest), f"binder/environment.yml lets conda pick Node {lowest}, which cannot build the extension"
    assert any(d.startswith("python") for d in deps)
    assert 'exec "$@"' in (BINDER / "start").read_text()


@pytest.mark.parametrize(
    "version, ok",
    [
        ("v20.18.3", False),
        ("v20.19.0", True),
        ("v21.7.0", False),
        ("v22.11.0", False),
        ("v22.12.0", True),
        ("v24.1.0", True),
    ],
)
def test_postbuild_refuses_a_node_that_cannot_build_the_extension_before_installing_anything(tmp_path, version, ok):
    fake = tmp_path / "bin"
    fake.mkdir()
    # A `node` reporting `version`; a `python` that refuses `-m pip` loudly, so we see whether the install was reached.
    (fake / "node").write_text(f'#!/bin/sh\n[ "$1" = --version ] && echo {version} && exit 0\nexit 97\n')
    (fake / "python").write_text(
        f'#!/bin/sh\ncase "$*" in *\'-m pip\'*) echo pip-was-run >&2; exit 3;; esac\nexec {sys.executable} "$@"\n'
    )
    for f in fake.iterdir():
        f.chmod(0o755)
    out = subprocess.run(
        ["bash", str(BINDER / "postBuild")],
        env={**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    if ok:
        assert "pip-was-run" in out.stderr, "an acceptable Node goes on to the install"
        assert "installing aidevops with its JupyterLab extension failed" in out.stderr
    else:
        assert out.returncode == 1 and "pip-was-run" not in out.stderr
        message = out.stderr.strip().splitlines()[-1]
        assert message.startswith(f"binder/postBuild: Node.js {version} cannot build the JupyterLab extension"), (
            out.stderr
        )


def _which(tool: str) -> str:
    import shutil

    path = shutil.which(tool)
    assert path, f"{tool} is not installed on this machine"
    return path


def test_start_refuses_before_changing_anything_when_the_registry_is_not_seeded(tmp_path):
    # A workspace with no registry: one sentence naming the fix, non-zero, no deployment, no traffic, no exec.
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "aidevops").write_text(f'#!/bin/sh\nexec {sys.executable} -m aidevops_ext.cli "$@"\n')
    (fake / "aidevops").chmod(0o755)
    clone = tmp_path / "repo"
    (clone / "binder").mkdir(parents=True)
    (clone / "binder" / "start").write_bytes((BINDER / "start").read_bytes())
    (clone / "binder" / "start").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIDEVOPS_", "MLFLOW_"))}
    env.update(PATH=f"{fake}:{env['PATH']}", AIDEVOPS_HOME=str(clone))
    out = subprocess.run(
        [str(clone / "binder" / "start"), "touch", str(tmp_path / "exec-ran")],
        env=env,
        cwd=clone,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1] == (
        "binder/start: the registry has no ci-digits champion to deploy; run binder/postBuild first "
        "(its CI pipeline registers it)."
    )
    assert not (tmp_path / "exec-ran").exists()
    assert not (clone / ".aidevops" / "binder").exists(), "no traffic stream was started"


# --------------------------------------------------------------------------- the real thing, end to end


@dataclass
class Binder:
    """A fresh clone with binder/postBuild run in a fresh venv, and the notebook server binder/start started."""

    clone: Path
    venv: Path
    env: dict[str, str]
    log: Path
    postbuild_seconds: float
    url: str = ""
    token: str = ""
    server: subprocess.Popen | None = None
    stopped: dict = field(default_factory=dict)

    def start(self) -> None:
        """binder/start with JupyterLab, as Binder runs it; again after a stop, so no test depends on order."""
        port, self.token = free_port(), secrets.token_hex(16)
        self.url, self.stopped = f"http://127.0.0.1:{port}", {}
        command = [
            str(self.clone / "binder" / "start"),
            "jupyter",
            "lab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={port}",
            f"--IdentityProvider.token={self.token}",
            "--ServerApp.allow_root=True",
        ]
        with self.log.open("w") as fh:
            self.server = subprocess.Popen(
                command,
                cwd=self.clone,
                env={**self.env, **SHORT_CYCLE},
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 300
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/api/status?token={self.token}", timeout=2):
                    return
            except OSError:
                if self.server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"binder/start + JupyterLab did not come up; its log:\n{self.log.read_text()[-4000:]}")
                time.sleep(0.5)

    def get(self, path: str, timeout: float = 30) -> tuple[int, dict]:
        request = urllib.request.Request(
            f"{self.url}/aidevops/api/{path}", headers={"Authorization": f"token {self.token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def aidevops(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.venv / "bin" / "aidevops"), *args],
            cwd=self.clone,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def traffic_log(self) -> str:
        return _tail(self.clone / ".aidevops" / "logs" / "binder-traffic.log", 6000)

    def traffic_pid(self) -> int | None:
        try:
            return int((self.clone / ".aidevops" / "binder" / "traffic.pid").read_text())
        except (OSError, ValueError):
            return None

    def stop(self) -> dict:
        """Stop everything (idempotent): the notebook server first, as when a Binder session ends."""
        if self.stopped or self.server is None:
            return self.stopped
        traffic = self.traffic_pid()
        if self.server.poll() is None:
            os.killpg(self.server.pid, signal.SIGTERM)
            try:
                self.server.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.server.pid, signal.SIGKILL)
                self.server.wait(10)
        # binder/traffic watches the server's pid (every 2 s) and stops its whole process group.
        deadline = time.monotonic() + 20
        while traffic and _alive(traffic) and time.monotonic() < deadline:
            time.sleep(0.2)
        traffic_outlived_server = bool(traffic and _alive(traffic))
        if traffic_outlived_server:
            os.killpg(traffic, signal.SIGKILL)
        undeployed = self.aidevops("undeploy", "--all", "--reason", "end of the binder test", timeout=120)
        time.sleep(1)
        leftovers = _processes_under(self.clone.parent)
        for pid in leftovers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.stopped = {
            "traffic_pid": traffic,
            "traffic_outlived_server": traffic_outlived_server,
            "undeploy": undeployed,
            "leftovers": {pid: _cmdline(pid) for pid in leftovers},
        }
        return self.stopped


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[-1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X")


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:300]
    except OSError:
        return "?"


def _processes_under(folder: Path) -> list[int]:
    """Live processes (not this one) whose command line or working folder lies in `folder`."""
    needle, found = str(folder), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            cwd = ""
        if (cwd.startswith(needle) or needle in _cmdline(int(entry.name))) and _alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def _fresh_env(root: Path, venv: Path) -> dict[str, str]:
    """A new user's environment: this machine's PATH behind the venv, no aidevops/MLflow/Jupyter settings, private
    Jupyter user folders, and deployments tied to this pytest process."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIDEVOPS_", "MLFLOW_", "JUPYTER", "VIRTUAL_ENV", "PYTHON", "PIP_REQUIRE"))
    }
    jupyter = root / "jupyter-user"
    env.update(
        PATH=f"{venv / 'bin'}:{env['PATH']}",
        VIRTUAL_ENV=str(venv),
        MPLBACKEND="Agg",
        JUPYTER_DATA_DIR=str(jupyter / "data"),
        JUPYTER_CONFIG_DIR=str(jupyter / "config"),
        JUPYTER_RUNTIME_DIR=str(jupyter / "runtime"),
        IPYTHONDIR=str(jupyter / "ipython"),
        AIDEVOPS_DEPLOY_WATCH_PID=str(os.getpid()),
        AIDEVOPS_ACTOR="binder-test",
    )
    return env


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> Binder:
    """One fresh clone built by binder/postBuild for the module, and its binder/start session."""
    root = tmp_path_factory.mktemp("binder")
    clone, venv = root / "repo", root / "venv"
    subprocess.run(["git", "clone", "--quiet", "--depth", "1", f"file://{REPO}", str(clone)], check=True, timeout=120)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    env = _fresh_env(root, venv)
    started = time.monotonic()
    out = subprocess.run(
        [str(clone / "binder" / "postBuild")], cwd=clone, env=env, capture_output=True, text=True, timeout=1200
    )
    postbuild_seconds = time.monotonic() - started
    (root / "postBuild.log").write_text(out.stdout + "\n--- stderr\n" + out.stderr)
    assert out.returncode == 0, f"binder/postBuild failed:\n{out.stdout[-3000:]}\n{out.stderr[-4000:]}"

    b = Binder(clone, venv, env, root / "jupyter.log", postbuild_seconds)
    try:
        b.start()
        yield b
    finally:
        b.stop()


@pytest.fixture
def binder(session) -> Binder:
    """The Binder session, running: started again when a test before this one ended it."""
    if session.stopped:
        session.start()
    return session


def test_postbuild_installed_the_extension_and_kernels_and_seeded_the_registry(binder):
    jupyter = str(binder.venv / "bin" / "jupyter")
    labext = subprocess.run(
        [jupyter, "labextension", "list"], env=binder.env, capture_output=True, text=True, timeout=120
    )
    assert "aidevops-ext" in labext.stdout + labext.stderr and "enabled" in labext.stdout + labext.stderr
    kernels = json.loads(
        subprocess.run(
            [jupyter, "kernelspec", "list", "--json"], env=binder.env, capture_output=True, text=True, timeout=60
        ).stdout
    )["kernelspecs"]
    for name in ("aidevops", "aidevops-gpu"):
        assert kernels[name]["spec"]["argv"][0] == str(binder.venv / "bin" / "python"), kernels[name]
    doctor = binder.aidevops("doctor", "--json")
    assert doctor.returncode == 0, doctor.stdout
    print(f"binder/postBuild took {binder.postbuild_seconds:.0f} s")  # reported with -s; never asserted


def test_the_panels_api_answers_with_the_seeded_model_its_deployment_and_the_ci_run(binder):
    status, body = binder.get("models")
    assert status == 200, body
    (model,) = [m for m in body["models"] if m["name"] == MODEL]
    champion = [v for v in model["versions"] if "champion" in (v.get("aliases") or [])]
    assert len(champion) == 1 and champion[0]["gate_passed"] is True, model["versions"]
    assert champion[0]["lineage"]["run_in_workspace"] is True

    status, body = binder.get("deployments")
    assert status == 200, body
    (dep,) = [d for d in body["deployments"] if d["name"] == NAME]
    assert dep["health"] == "healthy" and dep["state"] == "running", dep
    assert dep["active_version"] == champion[0]["version"]
    assert dep["url"].startswith("http://127.0.0.1:")

    status, body = binder.get("runs")
    assert status == 200, body
    ci = [r for r in body["runs"] if r["pipeline"] == "ci"]
    assert ci and ci[-1]["status"] == "succeeded", body["runs"]
    assert champion[0]["lineage"]["pipeline_run_id"] in {r["run_id"] for r in ci}

    request = urllib.request.Request(f"{binder.url}/aidevops/api/models")  # no token: refused
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 403


def test_simulated_traffic_reaches_the_monitor_panels_api(binder):
    """binder/traffic's warm-up burst lands in the deployment's request log within seconds, and its loop goes on
    to a drifted segment (the test shortens the segments, see SHORT_CYCLE)."""
    # The burst is 25 requests/s for 15 s (375 requests). The monitor counts input rows and the series counts
    # requests, so each is waited for on its own: a request may carry several rows.
    deadline, summary, series = time.monotonic() + 180, {}, {}
    while time.monotonic() < deadline:
        status, summary = binder.get(f"deployments/{NAME}/monitor?refresh=1")
        assert status == 200, summary
        status, series = binder.get(f"deployments/{NAME}/series?minutes=10&buckets=20")
        assert status == 200, series
        if (summary.get("logged_rows") or 0) >= 300 and _requests(series) >= 300:
            break
        time.sleep(2)
    assert (summary.get("logged_rows") or 0) >= 300, (
        f"the warm-up burst was not logged: {summary.get('logged_rows')} rows; traffic log:\n{binder.traffic_log()}"
    )
    assert {a["rule"] for a in summary["alerts"]} == {"feature-drift", "accuracy-low", "errors"}, summary["alerts"]
    assert summary["drift"]["status"] == "ok" and len(summary["drift"]["features"]) == 64
    assert _requests(series) >= 300 and series["quality"], series["requests"]

    # The loop's segments, in distribution then drifted, each a CLI run whose result line the log keeps.
    drifted = re.compile(r"sent (\d+) \((\d+) ok, 0 failed, ([1-9]\d*) drifted\)")
    deadline = time.monotonic() + 120
    while not drifted.search(binder.traffic_log()) and time.monotonic() < deadline:
        time.sleep(2)
    log = binder.traffic_log()
    assert drifted.search(log), f"no drifted segment completed; traffic log:\n{log}"
    assert {int(n) for n in re.findall(r"(\d+) failed", log)} == {0}, f"requests failed:\n{log}"
    assert "error:" not in log, log
    assert binder.traffic_pid() and _alive(binder.traffic_pid())


def _requests(series: dict) -> int:
    return sum(n or 0 for n in series.get("requests", {}).get("requests", []))


def test_start_is_idempotent(binder):
    """A second binder/start leaves the deployment as it is and starts no second traffic stream."""
    before = binder.traffic_pid()
    out = subprocess.run(
        [str(binder.clone / "binder" / "start"), "python", "-c", "print('handed over')"],
        cwd=binder.clone,
        env=binder.env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr
    assert f"deployment '{NAME}' unchanged" in out.stdout and out.stdout.rstrip().endswith("handed over"), out.stdout
    time.sleep(3)  # the second stream finds the lock taken and exits
    assert binder.traffic_pid() == before and _alive(before)
    assert "already runs for this workspace" in _tail(binder.clone / ".aidevops" / "logs" / "binder-traffic.log")
    streams = {_pgid(p) for p in _processes_under(binder.clone.parent) if "binder/traffic" in _cmdline(p)} - {None}
    assert streams == {before}, "one traffic stream (its process group: the loop and its watcher)"
    status, body = binder.get("deployments")
    assert [d["health"] for d in body["deployments"]] == ["healthy"]


def test_postbuild_is_idempotent(binder):
    """Run again on the built environment: it succeeds, and the pipeline is all cache hits (nothing re-registered)."""
    out = subprocess.run(
        [str(binder.clone / "binder" / "postBuild")],
        cwd=binder.clone,
        env=binder.env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, f"{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    latest = json.loads(binder.aidevops("show", "latest", "--json").stdout)
    assert {s["status"] for s in latest["steps"].values()} == {"cached"}, latest["steps"]
    models = json.loads(binder.aidevops("models", MODEL, "--json").stdout)
    assert [v["version"] for v in models[0]["versions"]] == ["1"]


def test_everything_stops_when_the_notebook_server_stops(binder):
    stopped = binder.stop()
    assert stopped["traffic_pid"], "binder/traffic wrote its pid"
    assert not stopped["traffic_outlived_server"], "binder/traffic stops itself when the notebook server exits"
    assert stopped["undeploy"].returncode == 0, stopped["undeploy"].stderr
    assert not stopped["leftovers"], f"processes left running: {stopped['leftovers']}"


def test_start_stops_the_deployment_it_started_when_the_traffic_cannot_start(binder, tmp_path):
    """No half state: a start whose traffic stream fails undoes its deployment and never runs the command."""
    binder.stop()  # this start begins from an ended session, as a new Binder session would
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "setsid").write_text("#!/bin/sh\nexit 1\n")
    (fake / "setsid").chmod(0o755)
    env = {**binder.env, "PATH": f"{fake}:{binder.env['PATH']}"}
    try:
        out = subprocess.run(
            [str(binder.clone / "binder" / "start"), "touch", str(tmp_path / "exec-ran")],
            cwd=binder.clone,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
    finally:
        deployments = json.loads(binder.aidevops("deployments", "--json").stdout)
        binder.aidevops("undeploy", "--all", "--reason", "end of the binder test")
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"deployment '{NAME}' started" in out.stdout, out.stdout
    assert out.stderr.strip().splitlines()[-1] == (
        "binder/start: the simulated traffic did not start; see .aidevops/logs/binder-traffic.log."
    ), out.stderr
    assert not (tmp_path / "exec-ran").exists()
    assert [(d["name"], d["state"]) for d in deployments] == [(NAME, "stopped")], deployments
    assert not _processes_under(binder.clone.parent), {p: _cmdline(p) for p in _processes_under(binder.clone.parent)}


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text()[-chars:]
    except OSError:
        return ""
