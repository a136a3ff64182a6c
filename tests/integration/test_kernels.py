"""The shipped kernelspecs: installed into a prefix and run by papermill, `aidevops init`, install on first use.

Environment-level cases run in a throwaway virtual environment (`--system-site-packages`, so it sees
this environment's packages), whose own prefix is where `--sys-prefix` installs go: the real
environment's kernels are never touched, and a kernel installed there cannot hide a missing one.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from aidevops_ext.kernels import SHIPPED, install_kernelspecs, kernel_spec
from tests.conftest import REPO, child_venv, write_notebook

PROBE = (
    "import json, os, sys\n"
    "from aidevops_ext.trainer.backend import ENV_VAR\n"
    "probe = {'python': sys.executable, 'backend_env': os.environ.get(ENV_VAR)}\n"
    "if probe['backend_env'] == 'numpy':\n"
    "    from aidevops_ext.trainer.backend import get_backend\n"
    "    probe['backend'] = get_backend('auto').name\n"
)


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "AIDEVOPS_HOME",
            "MLFLOW_TRACKING_URI",
            "MLFLOW_REGISTRY_URI",
            "AIDEVOPS_BACKEND",
            "JUPYTER_PATH",
            "VIRTUAL_ENV",
        )
    }
    env["MPLBACKEND"] = "Agg"
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A virtual environment on top of this one; its prefix receives --sys-prefix installs."""
    root = tmp_path_factory.mktemp("venv") / "env"
    return child_venv(root)


def venv_env(venv: Path, tmp: Path) -> dict[str, str]:
    # A private user data dir: a kernel in ~/.local/share/jupyter must not stand in for the one under test.
    return clean_env(
        JUPYTER_DATA_DIR=str(tmp / "user-jupyter"), PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    )


def kernels_of(env: dict[str, str], python: str = sys.executable) -> dict:
    out = subprocess.run(
        [python, "-m", "jupyter_client.kernelspecapp", "list", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["kernelspecs"]


def test_kernelspecs_install_into_a_prefix_and_run_with_papermill(tmp_path):
    prefix = tmp_path / "prefix"
    installed = install_kernelspecs(prefix)
    assert [k.name for k in installed] == list(SHIPPED) and all(k.changed for k in installed)
    for k in installed:
        spec = json.loads((prefix / "share" / "jupyter" / "kernels" / k.name / "kernel.json").read_text())
        assert spec["argv"][0] == sys.executable, (
            "the kernel starts this environment's Python, not whatever `python` is on PATH"
        )
        assert spec == kernel_spec(k.name)
    assert json.loads((prefix / "share/jupyter/kernels/aidevops/kernel.json").read_text())["env"] == {
        "AIDEVOPS_BACKEND": "numpy"
    }
    assert json.loads((prefix / "share/jupyter/kernels/aidevops-gpu/kernel.json").read_text())["env"] == {
        "AIDEVOPS_BACKEND": "cupy"
    }
    # Idempotent: a second install writes nothing.
    stamps = {p: p.stat().st_mtime_ns for p in prefix.rglob("*") if p.is_file()}
    assert not any(k.changed for k in install_kernelspecs(prefix))
    assert {p: p.stat().st_mtime_ns for p in prefix.rglob("*") if p.is_file()} == stamps

    env = clean_env(JUPYTER_PATH=str(prefix / "share" / "jupyter"), JUPYTER_DATA_DIR=str(tmp_path / "user-jupyter"))
    found = kernels_of(env)
    assert Path(found["aidevops"]["resource_dir"]) == prefix / "share" / "jupyter" / "kernels" / "aidevops"
    notebook = write_notebook(
        tmp_path / "probe.ipynb", "out = 'probe.json'\n", PROBE + "json.dump(probe, open(out, 'w'))"
    )
    results = {}
    for kernel in SHIPPED:
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "papermill",
                str(notebook),
                str(tmp_path / f"{kernel}.ipynb"),
                "-k",
                kernel,
                "-p",
                "out",
                str(tmp_path / f"{kernel}.json"),
                "--cwd",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert run.returncode == 0, run.stderr[-3000:]
        results[kernel] = json.loads((tmp_path / f"{kernel}.json").read_text())
    assert results["aidevops"] == {"python": sys.executable, "backend_env": "numpy", "backend": "numpy"}
    assert results["aidevops-gpu"] == {"python": sys.executable, "backend_env": "cupy"}


def test_init_installs_kernels_and_nbdime_git_integration_idempotently(venv, tmp_path):
    repo = tmp_path / "repo"
    (repo / "notebooks").mkdir(parents=True)
    global_config = tmp_path / "global.gitconfig"
    env = venv_env(venv, tmp_path) | {"GIT_CONFIG_GLOBAL": str(global_config)}
    git_env = {
        **env,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
    }

    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=repo, env=git_env, capture_output=True, text=True, check=True)
        return out.stdout

    git("init", "-q")
    nb = repo / "notebooks" / "step.ipynb"
    write_notebook(nb, "x = 1\n", "print(x)")
    git("add", ".")
    git("commit", "-qm", "one notebook")
    python = str(venv / "bin" / "python")
    first = subprocess.run(
        [python, "-m", "aidevops_ext.cli", "init"], cwd=repo, env=env, capture_output=True, text=True, timeout=120
    )
    assert first.returncode == 0, first.stderr
    kernels = venv / "share" / "jupyter" / "kernels"
    for name in SHIPPED:
        spec = json.loads((kernels / name / "kernel.json").read_text())
        assert spec["argv"][0] == python, "installed into the environment it was run from (--sys-prefix)"
        assert re.search(rf"^kernel\s+{name}\s+installed\s", first.stdout, re.M), first.stdout
    assert set(kernels_of(env, python)) >= set(SHIPPED)
    config = git("config", "--local", "--list")
    assert "diff.jupyternotebook.command=git-nbdiffdriver diff" in config
    assert "merge.jupyternotebook.driver=git-nbmergedriver merge %O %A %B %L %P" in config
    assert "difftool.nbdime.cmd=" in config and "mergetool.nbdime.cmd=" in config
    attributes = (repo / ".gitattributes").read_text()
    assert "*.ipynb diff=jupyternotebook merge=jupyternotebook" in attributes
    assert not global_config.exists(), "never --global"

    files = [repo / ".git" / "config", repo / ".gitattributes", *sorted(kernels.rglob("*"))]
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files if p.is_file()}
    second = subprocess.run(
        [python, "-m", "aidevops_ext.cli", "init"], cwd=repo, env=env, capture_output=True, text=True, timeout=120
    )
    assert second.returncode == 0, second.stderr
    assert "installed" not in second.stdout and "set " not in second.stdout, second.stdout
    assert second.stdout.count("unchanged") == len(SHIPPED) + 6
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files if p.is_file()} == before

    # git now diffs notebooks through nbdime: cells, not JSON.
    write_notebook(nb, "x = 2\n", "print(x)")
    diff = re.sub(r"\x1b\[[0-9;]*m", "", git("diff", "--", "notebooks/step.ipynb"))  # nbdime colours even into a pipe
    assert "## modified /cells/1/source:" in diff and "-x = 1" in diff and "+x = 2" in diff, diff
    assert '"execution_count"' not in diff


def test_init_outside_git_installs_kernels_and_says_why_git_was_skipped(venv, tmp_path):
    env = venv_env(venv, tmp_path)
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "aidevops_ext.cli", "init"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "not a git repository" in out.stdout


TOY_SPEC = """
name: toy
kernel: {kernel}
steps:
  probe:
    notebook: nb/probe.ipynb
    outputs: [probe.json]
"""


def toy_workspace(root: Path, kernel: str) -> Path:
    (root / "pipelines").mkdir(parents=True)
    (root / "pipelines" / "toy.yaml").write_text(TOY_SPEC.format(kernel=kernel))
    write_notebook(
        root / "nb" / "probe.ipynb",
        "step_dir = None\n",
        PROBE + "json.dump(probe, open(os.path.join(step_dir, 'probe.json'), 'w'))",
    )
    return root


def test_pipeline_installs_its_missing_kernel_on_first_use(venv, tmp_path):
    env = venv_env(venv, tmp_path)
    python = str(venv / "bin" / "python")
    kernels = venv / "share" / "jupyter" / "kernels"
    if (kernels / "aidevops").exists():  # an earlier test in this module ran `aidevops init` in this venv
        import shutil

        shutil.rmtree(kernels / "aidevops")
    assert "aidevops" not in kernels_of(env, python)
    root = toy_workspace(tmp_path / "ws", "aidevops")
    out = subprocess.run(
        [python, "-m", "aidevops_ext.cli", "run", "toy", "--no-track"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads((kernels / "aidevops" / "kernel.json").read_text())["argv"][0] == python
    (record,) = (root / ".aidevops" / "runs" / "toy").glob("*/run.json")
    probe = json.loads((record.parent / "probe" / "probe.json").read_text())
    assert probe == {"python": python, "backend_env": "numpy", "backend": "numpy"}
    assert json.loads(record.read_text())["kernel"] == "aidevops"


def test_a_kernel_nobody_ships_is_one_clear_sentence(venv, tmp_path):
    root = toy_workspace(tmp_path / "ws", "no-such-kernel")
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "aidevops_ext.cli", "run", "toy", "--no-track"],
        cwd=root,
        env=venv_env(venv, tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 2
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "error: Jupyter kernel 'no-such-kernel' is not installed; set 'kernel:' in the pipeline spec to one of "
    )
    assert "aidevops" in last and "python3" in last and "Traceback" not in out.stderr


def test_pipelines_name_the_aidevops_kernel():
    import yaml

    for spec in sorted((REPO / "pipelines").glob("*.yaml")):
        assert yaml.safe_load(spec.read_text())["kernel"] == "aidevops", spec.name
