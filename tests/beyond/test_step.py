"""`aidevops step`: bad input is one sentence and runs nothing (real runs: test_remote_tracking.py)."""

from __future__ import annotations

import subprocess

import pytest

from aidevops_ext.pipeline.params import parse_assignments
from tests.conftest import REPO
from tests.support.cli import run_cli


def step(tmp_path, *args: str) -> subprocess.CompletedProcess:
    return run_cli("step", *args, cwd=REPO, timeout=60)


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["-p", "epochs=3"], "declares no parameter 'epochs'"),
        (["-p", "seed=many"], "parameter 'seed' expects an integer"),
        (["-p", "run_dir=/x"], "set by the step runner"),
        (["--needs", "ghost"], "needs the folder(s) of ghost"),
        (["-p", "seed"], "is not of the form key=value"),
    ],
)
def test_bad_input_is_one_sentence_and_runs_nothing(tmp_path, extra, fragment):
    out = step(
        tmp_path, "notebooks/01_prepare_data.ipynb", "--name", "prepare", "--run-dir", str(tmp_path / "run"), *extra
    )
    assert out.returncode != 0 and fragment in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and out.stderr.strip().count("\n") == 0
    assert not (tmp_path / "run" / "prepare").exists()


def test_values_are_json_first_then_yaml():
    values = parse_assignments(
        ["lr=1e-05", 'name="digits"', "hidden=[64, 32]", "plain=digits", "gate={a: {threshold: 1}}"]
    )
    assert values == {
        "lr": 1e-05,
        "name": "digits",
        "hidden": [64, 32],
        "plain": "digits",
        "gate": {"a": {"threshold": 1}},
    }
