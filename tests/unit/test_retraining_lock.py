"""One retraining per deployment at a time, across processes: the lock a running retraining holds."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from aidevops_ext import retrainings
from aidevops_ext.errors import ConfigError
from aidevops_ext.workspace import Workspace


def test_a_held_lock_refuses_a_second_retraining_until_its_process_ends(tmp_path):
    ws = Workspace(tmp_path)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
        import sys, time
        from aidevops_ext import retrainings
        from aidevops_ext.workspace import Workspace
        from pathlib import Path
        lock = retrainings.retraining_lock(Workspace(Path({str(tmp_path)!r})), "svc")
        print("held", flush=True)
        time.sleep(60)
        """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert retrainings.retraining_running(ws, "svc")
        assert not retrainings.retraining_running(ws, "other"), "the lock is per deployment"
        with pytest.raises(ConfigError, match="a retraining of 'svc' is already running; wait for it to end"):
            retrainings.retraining_lock(ws, "svc")
    finally:
        holder.kill()
        holder.wait()
    assert not retrainings.retraining_running(ws, "svc"), "a killed retraining leaves no stale lock"
    lock = retrainings.retraining_lock(ws, "svc")
    assert retrainings.retraining_running(ws, "svc") is True
    lock.close()
    assert retrainings.retraining_running(ws, "svc") is False
