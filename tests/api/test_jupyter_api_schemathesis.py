"""Schemathesis against the Jupyter REST API from its generated OpenAPI description: a real Jupyter server with the
extension on an empty workspace, every operation with generated requests (bounded examples); no answer is a 5xx,
and every answer has a documented status, is JSON and matches its schema."""

from __future__ import annotations

import os

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
from tests.support.servers import start_jupyter


@pytest.fixture(scope="module")
def jupyter(tmp_path_factory):
    """`python -m jupyter_server` on 127.0.0.1 with only the aidevops extension, in an empty workspace."""
    root = tmp_path_factory.mktemp("workspace")
    (root / "pipelines").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIDEVOPS_", "MLFLOW_"))}
    env.update(AIDEVOPS_HOME=str(root), JUPYTER_CONFIG_DIR=str(root / ".jupyter-config"), MPLBACKEND="Agg")
    server = start_jupyter(
        "jupyter_server",
        root,
        env,
        root / "jupyter.log",
        "--ServerApp.jpserver_extensions={'aidevops_ext': True}",
        probe="/aidevops/api/jobs",
        seconds=120,  # a loaded machine starts the server slowly
    )
    yield server.url, server.token
    server.stop()


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
