"""The `aidevops` command as the tests run it: a fresh Python process in a project folder, its output captured,
with none of this test process's store, workspace or backend settings leaking into it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from tests.support.store import STORE_SETTINGS

AIDEVOPS = [sys.executable, "-m", "aidevops_ext.cli"]
# The store settings, and the array backend: a child picks its own as a user's shell would.
LEAKY_SETTINGS = (*STORE_SETTINGS, "AIDEVOPS_BACKEND")


def cli_env(**settings: str) -> dict[str, str]:
    """This process's environment without LEAKY_SETTINGS, then `settings` on top."""
    env = {k: v for k, v in os.environ.items() if k not in LEAKY_SETTINGS}
    env.update(settings)
    return env


def run_cli(
    *args: str, cwd: Path | str | None = None, env: Mapping[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """`aidevops *args` in `cwd`; `env` adds settings to (or overrides) the cleaned environment."""
    return subprocess.run(
        [*AIDEVOPS, *args], cwd=cwd, env=cli_env(**(env or {})), capture_output=True, text=True, timeout=timeout
    )


def loop_settings(**more: str) -> dict[str, str]:
    """What a closed-loop test's CLI calls add: plots without a display, a monitor pass every second, and
    supervisors that stop when this pytest process ends (a killed session leaks no server)."""
    return {
        "MPLBACKEND": "Agg",
        "AIDEVOPS_MONITOR_SECONDS": "1",
        "AIDEVOPS_DEPLOY_WATCH_PID": str(os.getpid()),
        **more,
    }
