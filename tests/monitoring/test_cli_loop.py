"""The loop's CLI commands on bad input: one sentence, exit 2, nothing written."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from aidevops_ext.deploy.store import DeployStore
from aidevops_ext.workspace import Workspace
from tests.support.cli import run_cli
from tests.support.deployments import deployment_row


def cli(root, *args):
    return run_cli(*args, cwd=root, env={"AIDEVOPS_HOME": str(root)}, timeout=120)


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under root with its kind, and for files size, mtime and content hash.

    Equal snapshots mean no file was created, removed or changed. A folder's own mtime is left out: reading
    deploy.db opens it in WAL mode, and SQLite creates and removes its -wal/-shm files beside it, which
    moves the folder's mtime though nothing stays behind.
    """
    found: dict[str, tuple] = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        if p.is_file():
            found[str(p.relative_to(root))] = (
                "file",
                st.st_size,
                st.st_mtime_ns,
                hashlib.sha256(p.read_bytes()).hexdigest(),
            )
        else:
            found[str(p.relative_to(root))] = ("dir" if p.is_dir() else "other",)
    return found


@pytest.fixture
def ws(tmp_path):
    ws = Workspace(tmp_path).ensure()
    DeployStore(ws).put(deployment_row("gone", state="stopped", desired="stopped", host="127.0.0.1", port=9))
    return ws


@pytest.mark.parametrize(
    "args,message",
    [
        (["monitor", "nosuch", "--once"], "There is no deployment named 'nosuch' (deployments: gone)"),
        (["monitor", "gone", "--once"], "Deployment 'gone' is not running here (state: stopped)"),
        (["monitor", "gone", "--interval", "0"], "--interval must be a positive number of seconds"),
        (["simulate", "nosuch"], "There is no deployment named 'nosuch'"),
        (["simulate", "gone"], "Deployment 'gone' is not running here (state: stopped)"),
        (["retrain", "nosuch"], "There is no deployment named 'nosuch'"),
        (["retrain", "gone", "--rows", "0"], "--rows must be a positive number of labelled rows"),
        (["retrain", "gone"], "no pipeline in"),
    ],
)
def test_bad_requests_are_one_sentence_and_write_nothing(ws, args, message):
    before = snapshot(ws.root)
    out = cli(ws.root, *args)
    assert out.returncode == 2, out.stderr
    line = out.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ") and message in line, line
    assert "Traceback" not in out.stderr
    after = snapshot(ws.root)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"a refused request wrote to the workspace: {changed}"


def test_retrains_lists_nothing_before_any_retraining(ws):
    out = cli(ws.root, "retrains", "--json")
    assert out.returncode == 0 and out.stdout.strip() == "[]"
    assert cli(ws.root, "retrains").stdout.strip() == "no retrainings yet"
