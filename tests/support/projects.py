"""Projects for the tests to run: a copy of the repository's own, or a one-step pipeline written on the spot."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from tests.conftest import REPO, write_notebook


def copy_project(root: Path) -> Path:
    """The repository's notebooks and pipelines copied into `root` (the tests never run the repository's own)."""
    shutil.copytree(REPO / "notebooks", root / "notebooks")
    shutil.copytree(REPO / "pipelines", root / "pipelines")
    return root


def one_step_pipeline(root: Path, name: str, step: str, code: str, params: dict | None = None) -> Path:
    """`pipelines/NAME.yaml` under `root`: one step, STEP, running `STEP.ipynb` (its parameters cell sets `params`,
    the pipeline's defaults; then `code` runs). Returns `root`."""
    spec: dict = {"name": name, "params": params} if params else {"name": name}
    spec["steps"] = {step: {"notebook": f"{step}.ipynb"}}
    (root / "pipelines").mkdir(parents=True, exist_ok=True)
    (root / "pipelines" / f"{name}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    write_notebook(root / f"{step}.ipynb", "\n".join(f"{k} = {v!r}" for k, v in (params or {}).items()), code)
    return root
