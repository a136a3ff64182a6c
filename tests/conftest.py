"""Shared fixtures: an isolated workspace per test, with no MLflow/aidevops env leaking in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


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
        return {"cell_type": "code", "metadata": {"tags": tags or []}, "source": src,
                "outputs": [], "execution_count": None}
    nb = {
        "cells": [{"cell_type": "markdown", "metadata": {}, "source": markdown},
                  code(params, ["parameters"]), *[code(c) for c in cells]],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                     "language_info": {"name": "python"}},
        "nbformat": 4, "nbformat_minor": 4,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb))
    return path
