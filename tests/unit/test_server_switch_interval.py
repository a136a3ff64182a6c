"""The model server runs with a short GIL switch interval, so a request waits at most that long for the GIL a
background thread (the log writer, the compactor, the feedback writer) holds."""

from __future__ import annotations

import sys

import pytest
import uvicorn

from aidevops_ext.serving import server
from aidevops_ext.serving.priority import SERVER_SWITCH_INTERVAL_S


def test_uvicorn_serves_with_the_short_switch_interval(monkeypatch):
    seen = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: seen.append(sys.getswitchinterval()))
    before = sys.getswitchinterval()
    try:
        server.run_uvicorn(object(), [], "warning")
    finally:
        sys.setswitchinterval(before)
    assert seen == [pytest.approx(SERVER_SWITCH_INTERVAL_S)]
    assert SERVER_SWITCH_INTERVAL_S < 0.005 / 4, "a quarter of the interpreter's default at most"
