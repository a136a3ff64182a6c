"""In-process tests of the Jupyter server extension: a real Jupyter server app in this process (pytest-jupyter's
`jp_fetch`), with the aidevops extension loaded on a fresh workspace. No JupyterLab, browser or pipeline run.

pytest-jupyter's fixtures are imported here, not registered suite-wide: its autouse event-loop fixture would
otherwise wrap every test of the suite.
"""

from __future__ import annotations

import json

import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F403 - jp_fetch, jp_serverapp and the fixtures they need
from tornado.httpclient import HTTPClientError


@pytest.fixture
def workspace(jp_root_dir, clean_env):
    """The Jupyter root is the workspace: it holds pipelines/, so the extension finds it there."""
    (jp_root_dir / "pipelines").mkdir()
    return jp_root_dir


@pytest.fixture
def jp_server_config(workspace):
    return {"ServerApp": {"jpserver_extensions": {"aidevops_ext": True}}}


@pytest.fixture
def api(jp_fetch):
    """`await api(METHOD, "path?query", body)` -> (status, JSON answer) under /aidevops/api; a 4xx is an answer too."""

    async def call(method: str, path: str, body: object = None):
        path, _, query = path.partition("?")
        kwargs = {"params": dict(pair.split("=", 1) for pair in query.split("&"))} if query else {}
        if method == "POST":
            kwargs["body"] = json.dumps(body if body is not None else {})
        try:
            response = await jp_fetch("aidevops", "api", *path.split("/"), method=method, **kwargs)
        except HTTPClientError as exc:
            return exc.code, json.loads(exc.response.body)
        return response.code, json.loads(response.body)

    return call
