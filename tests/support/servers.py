"""Processes the tests start and reach over HTTP on 127.0.0.1: a port to give one, waiting until it answers,
stopping it by its own handle, and a Jupyter server with this repository's extension."""

from __future__ import annotations

import functools
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    """A port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_answering(url: str, proc: subprocess.Popen, log: Path, *, seconds: float, what: str) -> None:
    """Return once GET `url` answers 200. If `proc` exits first, or `seconds` pass (a generous bound for a loaded
    machine, never a speed requirement; `proc` is killed then), raise with the tail of its log."""
    deadline = time.monotonic() + seconds
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}; its log:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"{what} did not answer {url} in {seconds:.0f} s; its log:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


def stop_process(proc: subprocess.Popen, *, group: bool = False, grace: float = 15.0) -> None:
    """Stop a process the test started, by its own handle (with `group`, every process of the session it leads):
    SIGTERM, then SIGKILL if it still runs after `grace` seconds; it is reaped either way."""
    send = functools.partial(os.killpg, proc.pid) if group else proc.send_signal
    send(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        proc.wait(5)


@dataclass
class JupyterServer:
    """A Jupyter server process on 127.0.0.1, token-authenticated."""

    proc: subprocess.Popen
    url: str
    token: str

    def stop(self) -> None:
        stop_process(self.proc, group=True, grace=30)


def start_jupyter(
    app: str, root: Path, env: dict[str, str], log: Path, *options: str, probe: str, seconds: float
) -> JupyterServer:
    """`python -m app` (jupyter_server, jupyterlab) serving `root` with `options`, in a session of its own (so
    `stop` reaches its kernels too), once `probe` (a path) answers; its output goes to `log`."""
    port, token = free_port(), secrets.token_hex(16)
    command = [sys.executable, "-m", app, "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1"]
    command += [f"--IdentityProvider.token={token}", "--allow-root", f"--ServerApp.root_dir={root}", *options]
    with open(log, "w") as out:
        proc = subprocess.Popen(
            command, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    wait_until_answering(f"{url}{probe}?token={token}", proc, log, seconds=seconds, what=app)
    return JupyterServer(proc, url, token)
