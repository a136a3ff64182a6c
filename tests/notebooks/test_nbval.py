"""nbval over every pipeline notebook, run by hand with its own fast defaults, in order, on the `aidevops` kernel.

The notebooks depend on each other when run by hand (01 writes what 02 reads, through
`.aidevops/scratch/`), and 04 registers a model, so they run in order in one throwaway workspace
(AIDEVOPS_HOME), never in the repository's `.aidevops/`; 05 deploys it, and the fixture stops that
deployment afterwards. nbval runs in a child pytest so its
collection of `.ipynb` files stays out of this suite's own collection and options.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from aidevops_ext.kernels import ensure_kernel
from tests.conftest import REPO
from tests.support.projects import copy_project

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def code_cells(path: Path) -> int:
    return sum(1 for c in json.loads(path.read_text(encoding="utf-8"))["cells"] if c["cell_type"] == "code")


@pytest.fixture(scope="module")
def nbval_run(tmp_path_factory):
    """One nbval session over copies of notebooks/ (and pipelines/) in a fresh workspace."""
    ensure_kernel("aidevops")  # what pipelines run on; installed on first use like the runner does
    root = copy_project(tmp_path_factory.mktemp("nbval-workspace"))
    (root / "pytest.ini").write_text("[pytest]\n")  # the child must not read this repository's pytest options
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "AIDEVOPS_BACKEND", "PYTEST_ADDOPTS")
    }
    env["AIDEVOPS_HOME"] = str(root)
    env["AIDEVOPS_DEPLOY_WATCH_PID"] = str(os.getpid())  # 05_deploy's server stops if this session dies
    env.pop("MPLBACKEND", None)  # as in JupyterLab: inline plots
    args = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-c",
        str(root / "pytest.ini"),
        "--rootdir",
        str(root),
        "--nbval-lax",
        "--nbval-kernel-name",
        "aidevops",
        "--nbval-cell-timeout",
        "300",
        "-v",
        *[str(root / "notebooks" / nb.name) for nb in NOTEBOOKS],
    ]
    try:
        out = subprocess.run(args, cwd=root, env=env, capture_output=True, text=True, timeout=900)
        yield root, out
    finally:
        # 05_deploy starts a background server (as it should for a user): stop it, CI must not leak processes.
        from aidevops_ext.deploy.manager import undeploy_all
        from aidevops_ext.workspace import Workspace

        undeploy_all(Workspace(root), reason="nbval finished")


def test_every_pipeline_notebook_is_covered():
    import yaml

    used = {
        (REPO / step["notebook"]).resolve()
        for spec in (REPO / "pipelines").glob("*.yaml")
        for step in yaml.safe_load(spec.read_text())["steps"].values()
    }
    assert used and used <= {nb.resolve() for nb in NOTEBOOKS}


def test_nbval_passes_on_all_notebooks_in_order(nbval_run):
    root, out = nbval_run
    tail = (out.stdout + out.stderr)[-6000:]
    assert out.returncode == 0, tail
    expected = sum(code_cells(nb) for nb in NOTEBOOKS)
    assert re.search(rf"\b{expected} passed\b", out.stdout), tail
    assert "skipped" not in out.stdout.splitlines()[-1], tail
    # Every notebook's cells ran, in file order (nbval 0.11 names items notebooks/<stem>::ipynb::Cell <n>).
    ran = re.findall(r"notebooks/(\d\d_\w+)(?:\.ipynb|::ipynb)::Cell \d+ PASSED", out.stdout)
    assert list(dict.fromkeys(ran)) == [nb.stem for nb in NOTEBOOKS], tail


def test_notebooks_by_hand_stay_in_their_workspace(nbval_run):
    root, _ = nbval_run
    scratch = root / ".aidevops" / "scratch"
    assert (scratch / "prepare" / "dataset.json").is_file()
    assert (scratch / "train" / "model.npz").is_file()
    registration = json.loads((scratch / "register" / "registration.json").read_text())
    assert registration["version"] == "1" and registration["gate_passed"] is True
    assert (root / ".aidevops" / "mlflow.db").is_file()
    deployment = json.loads((scratch / "deploy" / "deployment.json").read_text())
    assert deployment["smoke"] == {"invocations": 200, "v2_infer": 200, "matches_registry": True}
