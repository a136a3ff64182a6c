"""Command-line tools the tests run that the test extras install (linters shipped as Python wheels)."""

from __future__ import annotations

import os
import shutil
import sysconfig


def installed_tool(name: str, install: str) -> str:
    """The path of NAME: this environment's console script first (the test extras put it there, and a test run
    need not activate the environment), else one on PATH. Missing, an AssertionError saying `install`."""
    path = os.pathsep.join([sysconfig.get_path("scripts"), os.environ.get("PATH", "")])
    found = shutil.which(name, path=path)
    assert found, f"{name} is missing: {install}"
    return found
