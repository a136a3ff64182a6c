"""The local target: a detached supervisor process per deployment, and the HTTP handle on its server.

`start_supervisor` launches `python -m aidevops_ext.deploy.supervisor NAME --workspace ROOT` in a new
session (it outlives the CLI, the notebook kernel or the pipeline that started it), with its output in
`.aidevops/logs/NAME.log`. The supervisor binds the port, runs the server as its child, restarts it when
it dies, and writes pids, port and state to deploy.db (see supervisor.py).

`AdminClient` speaks the server's admin API (serving/admin.py) on 127.0.0.1 with the deployment's token.
Nothing here goes through a shell: every command is an argument list.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from ..errors import AidevopsError, ConfigError
from ..workspace import Workspace
from .store import FAILED, RUNNING, STOPPED, Deployment, DeployStore

SUPERVISOR_MODULE = "aidevops_ext.deploy.supervisor"
CHILD_MODULE = "aidevops_ext.deploy.child"
LOG_DIR = "logs"
MAX_LOG_BYTES = 20 * 1024 * 1024


class DeploymentError(AidevopsError):
    """A deployment cannot do what was asked (not running, not answering, refused by its server...)."""

    http_status = 409


def log_path(ws: Workspace, name: str) -> Path:
    """Where a deployment's supervisor and server write their output."""
    return ws.state / LOG_DIR / f"{name}.log"


def log_tail(path: str | Path | None, lines: int = 15) -> str:
    """The last lines of a log file ('' if none)."""
    if not path:
        return ""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 8192))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


# --------------------------------------------------------------------------- processes


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this pid exists and is not a zombie (another user's process included)."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists; whether it is a zombie is in /proc all the same
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[-1].split()[0]
        return state not in (b"Z", b"X")
    except (OSError, IndexError):
        return True


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return [a.decode("utf-8", "replace") for a in fh.read().split(b"\0") if a]
    except OSError:
        return []


def is_supervisor(pid: int | None, name: str) -> bool:
    """Whether `pid` is the running supervisor of deployment `name` (not a recycled pid)."""
    if pid is None or not pid_alive(pid):
        return False
    args = _cmdline(pid)
    if not args:  # no /proc (not Linux): trust the pid
        return True
    return SUPERVISOR_MODULE in args and name in args


def is_server(pid: int | None, name: str) -> bool:
    """Whether `pid` is the server process of deployment `name`."""
    if pid is None or not pid_alive(pid):
        return False
    args = _cmdline(pid)
    return not args or (CHILD_MODULE in args and name in args)


def start_supervisor(ws: Workspace, name: str) -> int:
    """Launch the supervisor of `name`, detached, logging to the workspace; returns its pid."""
    path = log_path(ws, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.stat().st_size > MAX_LOG_BYTES:
        os.replace(path, path.with_suffix(".log.1"))
    env = dict(os.environ)
    env["AIDEVOPS_HOME"] = str(ws.root)
    env.pop("AIDEVOPS_SERVING_ADMIN_TOKEN", None)  # the supervisor reads its deployment's own token
    env.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    env["PYTHONUNBUFFERED"] = "1"
    with open(path, "ab") as log, open(os.devnull, "rb") as devnull:
        proc = subprocess.Popen(
            [sys.executable, "-m", SUPERVISOR_MODULE, name, "--workspace", str(ws.root)],
            stdin=devnull,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=str(ws.root),
            env=env,
            start_new_session=True,
            close_fds=True,
        )
    return proc.pid


def wait_until_up(store: DeployStore, name: str, supervisor_pid: int, timeout: float = 180.0) -> Deployment:
    """Wait until the supervisor reports its server running; DeploymentError with the reason if it fails."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dep = store.get(name)
        if dep is not None and dep.supervisor_pid == supervisor_pid:
            if dep.state == RUNNING and dep.server_pid:
                return dep
            if dep.state in (FAILED, STOPPED):
                raise DeploymentError(dep.error or f"Deployment '{name}' stopped while starting; see {dep.log_path}.")
        if not pid_alive(supervisor_pid):
            dep = store.get(name)
            err = dep.error if dep is not None and dep.error else None
            raise DeploymentError(
                err
                or f"The supervisor of '{name}' exited while starting; see "
                f"{log_path(store.workspace, name)}:\n{log_tail(log_path(store.workspace, name))}"
            )
        time.sleep(0.1)
    raise DeploymentError(
        f"Deployment '{name}' did not come up within {timeout:.0f} s; see {log_path(store.workspace, name)}."
    )


def stop_supervisor(pid: int | None, name: str, timeout: float = 20.0) -> bool:
    """SIGTERM the supervisor of `name` (it stops its server first) and wait; SIGKILL as a last resort."""
    if not is_supervisor(pid, name):
        return False
    assert pid is not None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    return True


def kill_server(pid: int | None, name: str) -> bool:
    """SIGKILL a stray server of `name` (one whose supervisor is gone)."""
    if not is_server(pid, name):
        return False
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    return True


def end_child(child: subprocess.Popen | None, timeout: float = 10.0) -> None:
    """SIGTERM a child process (graceful: it finishes what it is doing), SIGKILL after `timeout`."""
    if child is None or child.poll() is not None:
        return
    child.terminate()
    try:
        child.wait(timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait(5)


def check_port_free(host: str, port: int) -> None:
    """ConfigError (one sentence, naming the port) when host:port cannot be listened on now."""
    if not port:
        return
    from ..serving.server import bind_socket  # noqa: PLC0415 - the server's own check and wording

    bind_socket(host, port).close()


# --------------------------------------------------------------------------- the admin API


class AdminClient:
    """HTTP calls to one deployment's server: admin operations with its token, and plain requests."""

    def __init__(self, dep: Deployment, timeout: float = 180.0) -> None:
        if dep.url is None:
            raise DeploymentError(
                f"Deployment '{dep.name}' has no local server address; is it a {dep.target} deployment?"
            )
        self.dep = dep
        self.base = dep.url
        self.timeout = timeout

    def request(
        self, method: str, path: str, body: Any = None, *, admin: bool = False, timeout: float | None = None
    ) -> tuple[int, Any]:
        """(status, decoded JSON or text) of one request; DeploymentError if the server does not answer."""
        data = None if body is None else json.dumps(body).encode("utf-8")
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if admin:
            req.add_header("Authorization", f"Bearer {self.dep.admin_token or ''}")
        try:
            with _opener.open(req, timeout=timeout or self.timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DeploymentError(
                f"Deployment '{self.dep.name}' does not answer on {self.base} ({reason}); "
                f"see `aidevops deployments {self.dep.name}` and its log {self.dep.log_path}."
            ) from None
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode("utf-8", "replace")

    def admin(self, path: str, body: dict | None = None) -> dict:
        """One admin operation: the server's answer, or the matching error (422 → ModelRefused)."""
        from ..serving.errors import ModelRefused  # noqa: PLC0415

        status, answer = self.request("GET" if body is None else "POST", "/admin/" + path, body, admin=True)
        message = answer.get("error") if isinstance(answer, dict) else str(answer)[:500]
        if status == 200:
            return answer
        if status == 422:
            raise ModelRefused(message)
        if status in (401, 403):
            raise DeploymentError(
                f"The server of '{self.dep.name}' refused the deployment's admin token ({message}); "
                "redeploy it with `aidevops undeploy` then `aidevops deploy`."
            )
        if status in (400, 409):
            raise ConfigError(message)
        raise DeploymentError(f"The server of '{self.dep.name}' answered {status} to /admin/{path}: {message}")

    def slots(self, timeout: float | None = None) -> dict:
        """GET /admin/slots."""
        status, answer = self.request("GET", "/admin/slots", admin=True, timeout=timeout)
        if status != 200 or not isinstance(answer, dict):
            raise DeploymentError(f"The server of '{self.dep.name}' answered {status} to /admin/slots.")
        return answer

    def ready(self, timeout: float = 2.0) -> bool:
        """Whether the server answers /v2/health/ready with 200."""
        try:
            status, _ = self.request("GET", "/v2/health/ready", timeout=timeout)
        except DeploymentError:
            return False
        return status == 200


class _NoProxy(urllib.request.ProxyHandler):
    def __init__(self) -> None:
        super().__init__({})  # loopback calls must never go through an HTTP(S)_PROXY


_opener = urllib.request.build_opener(_NoProxy())
