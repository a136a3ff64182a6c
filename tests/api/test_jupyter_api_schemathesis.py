"""Schemathesis against the Jupyter REST API from its generated OpenAPI description: a real Jupyter server with the
extension on an empty workspace, every operation with generated requests (bounded examples); no answer is a 5xx,
and every answer has a documented status, is JSON and matches its schema."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from aidevops_ext.api import openapi


@pytest.fixture(scope="module")
def jupyter(tmp_path_factory):
    """`python -m jupyter_server` on 127.0.0.1 with only the aidevops extension, in an empty workspace."""
    root = tmp_path_factory.mktemp("workspace")
    (root / "pipelines").mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIDEVOPS_", "MLFLOW_"))}
    env.update(AIDEVOPS_HOME=str(root), JUPYTER_CONFIG_DIR=str(root / ".jupyter-config"), MPLBACKEND="Agg")
    log = root / "jupyter.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter_server",
                "--no-browser",
                f"--port={port}",
                "--ServerApp.ip=127.0.0.1",
                f"--IdentityProvider.token={token}",
                "--allow-root",
                f"--ServerApp.root_dir={root}",
                "--ServerApp.jpserver_extensions={'aidevops_ext': True}",
            ],
            cwd=root,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120  # a loaded machine starts the server slowly
    while True:
        try:
            with urllib.request.urlopen(f"{url}/aidevops/api/jobs?token={token}", timeout=2):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"Jupyter server did not start; its log:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
    yield url, token
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def api_schema(jupyter):
    return schemathesis.openapi.from_dict(openapi.spec())


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_described_on_an_empty_workspace(case, jupyter):
    url, token = jupyter
    case.call_and_validate(
        base_url=url + "/aidevops/api",
        headers={"Authorization": f"token {token}"},
        timeout=60,
        checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance],
    )
