"""Shared fixtures: an isolated workspace per test, with no MLflow/aidevops env leaking in."""

from __future__ import annotations

import json
import site
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# The quick tier (`python -m pytest -m quick`, the everyday command): unit tests and in-process tests, with no
# JupyterLab, browser, pipeline run, deployment or Binder build. Whole folders, so a new unit test is in it
# without anyone remembering a marker; a module here that grows slow belongs in another folder.
QUICK = (
    "tests/unit/",
    "tests/monitoring/",
    "tests/api/",
    "tests/serving/test_parsing.py",
    "tests/serving/test_slots.py",
    "tests/serving/test_rollups.py",
    "tests/serving/test_workermetrics.py",
    "tests/deploy/test_store.py",
)


def pytest_collection_modifyitems(items):
    for item in items:
        if item.nodeid.startswith(QUICK):
            item.add_marker(pytest.mark.quick)


def child_venv(root: Path) -> Path:
    """A virtual environment at `root` that imports what this one has (aidevops_ext included) but has its own prefix.

    `--system-site-packages` alone reaches the *base* interpreter's packages: when the tests themselves run in a
    virtual environment (a fresh CI machine), aidevops_ext would not import. A .pth line adds this environment's
    site folders the way site.py does (their own .pth files, the editable install's, processed too).
    """
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(root)], check=True)
    if sys.prefix != sys.base_prefix:
        (site_dir,) = (root / "lib").glob("python3*/site-packages")
        dirs = [d for d in site.getsitepackages() if Path(d).is_dir()]
        (site_dir / "_parent_env.pth").write_text(f"import site; list(map(site.addsitedir, {dirs!r}))\n")
    return root


@pytest.fixture
def clean_env(monkeypatch):
    """Remove env vars that would point a test at a shared store or backend."""
    for var in ("AIDEVOPS_HOME", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "AIDEVOPS_BACKEND"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    return monkeypatch


def write_notebook(path: Path, params: str, *cells: str, markdown: str = "A step.") -> Path:
    """Write a minimal notebook: a markdown cell, a parameters cell, then code cells."""

    def code(src, tags=None):
        return {
            "cell_type": "code",
            "metadata": {"tags": tags or []},
            "source": src,
            "outputs": [],
            "execution_count": None,
        }

    nb = {
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": markdown},
            code(params, ["parameters"]),
            *[code(c) for c in cells],
        ],
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 4,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb))
    return path
