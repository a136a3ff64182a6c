"""Command-line tools the tests run that the test extras install (linters shipped as Python wheels)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
from pathlib import Path


def installed_tool(name: str, install: str) -> str:
    """The path of NAME: this environment's console script first (the test extras put it there, and a test run
    need not activate the environment), else one on PATH. Missing, an AssertionError saying `install`."""
    path = os.pathsep.join([sysconfig.get_path("scripts"), os.environ.get("PATH", "")])
    found = shutil.which(name, path=path)
    assert found, f"{name} is missing: {install}"
    return found


class Linter:
    """A linter the test extras install, run on one file: calling it gives the finished process."""

    def __init__(self, name: str, install: str, *flags: str, timeout: float = 120) -> None:
        self.name, self.install, self.flags, self.timeout = name, install, flags, timeout

    def __call__(self, path: Path) -> subprocess.CompletedProcess:
        command = [installed_tool(self.name, self.install), *self.flags, str(path)]
        return subprocess.run(command, capture_output=True, text=True, timeout=self.timeout)

    def assert_clean(self, path: Path) -> None:
        out = self(path)
        assert out.returncode == 0 and out.stdout == "", out.stdout + out.stderr
