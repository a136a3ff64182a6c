"""Output hygiene: the pipeline notebooks are committed without outputs or execution counts.

`test_committed_notebooks_have_no_outputs` is the guard; the fixture tests prove it fails on a notebook
with outputs, that the stripper fixes one without touching code, and that the pre-commit hook strips.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aidevops_ext.review.hygiene import check_files, main, notebook_problems, strip_file
from tests.conftest import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def assert_clean(folder: Path) -> None:
    """The hygiene rule, for any folder of notebooks."""
    dirty = check_files(sorted(folder.glob("*.ipynb")))
    assert not dirty, (
        "notebooks committed with outputs: "
        + "; ".join(f"{p.name}: {', '.join(problems)}" for p, problems in dirty.items())
        + " — run `pre-commit run --all-files` (or python -m aidevops_ext.review.hygiene FILE)."
    )


def test_committed_notebooks_have_no_outputs():
    assert NOTEBOOKS
    assert_clean(REPO / "notebooks")


@pytest.fixture
def executed_notebook(tmp_path) -> Path:
    """A copy of a real pipeline notebook as JupyterLab leaves it after running: outputs, counts, timings."""
    nb = json.loads((REPO / "notebooks" / "02_train.ipynb").read_text(encoding="utf-8"))
    count = 0
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            count += 1
            cell["execution_count"] = count
            cell["metadata"]["execution"] = {"iopub.execute_input": "2026-01-01T00:00:00.000Z"}
            cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": [f"cell {count}\n"]}]
    folder = tmp_path / "notebooks"
    folder.mkdir()
    path = folder / "02_train.ipynb"
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def test_the_hygiene_test_fails_on_a_notebook_with_outputs(executed_notebook):
    with pytest.raises(AssertionError, match="notebooks committed with outputs: 02_train.ipynb: cell 1 has 1 output"):
        assert_clean(executed_notebook.parent)


def test_one_output_or_one_count_is_enough_to_fail(tmp_path):
    nb = json.loads(NOTEBOOKS[0].read_text(encoding="utf-8"))
    assert notebook_problems(nb) == []
    code = next(i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code")
    nb["cells"][code]["execution_count"] = 7
    assert notebook_problems(nb) == [f"cell {code} has execution count 7"]
    nb["cells"][code]["execution_count"] = None
    nb["cells"][code]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "x"}]
    assert notebook_problems(nb) == [f"cell {code} has 1 output(s)"]


def test_stripping_removes_outputs_and_keeps_the_code(executed_notebook):
    before = json.loads(executed_notebook.read_text(encoding="utf-8"))
    assert strip_file(executed_notebook) is True
    assert_clean(executed_notebook.parent)
    after = json.loads(executed_notebook.read_text(encoding="utf-8"))
    assert [c["source"] for c in after["cells"]] == [c["source"] for c in before["cells"]]
    assert [c["metadata"].get("tags") for c in after["cells"]] == [c["metadata"].get("tags") for c in before["cells"]]
    # Stripped, it is byte for byte the committed notebook it was made from.
    assert executed_notebook.read_bytes() == (REPO / "notebooks" / "02_train.ipynb").read_bytes()
    assert strip_file(executed_notebook) is False


def test_hook_entry_point_exit_codes(executed_notebook, capsys):
    assert main(["--check", str(executed_notebook)]) == 1
    assert "02_train.ipynb: cell 1 has 1 output(s)" in capsys.readouterr().out
    assert main([str(executed_notebook)]) == 1  # changed a file: the commit stops so it can be re-staged
    assert main([str(executed_notebook)]) == 0
    assert main(["--check", str(executed_notebook)]) == 0
    (executed_notebook.parent / "broken.ipynb").write_text("{not json")
    assert main(["--check", str(executed_notebook.parent / "broken.ipynb")]) == 2


def test_pre_commit_hook_strips_notebooks(executed_notebook, tmp_path):
    """The repository's .pre-commit-config.yaml, run by pre-commit in a scratch clone-like repo."""
    repo = executed_notebook.parent.parent
    shutil.copy(REPO / ".pre-commit-config.yaml", repo / ".pre-commit-config.yaml")
    env = {
        **os.environ,
        "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"),
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
    }
    # The hook's `python` must be this interpreter (it has aidevops_ext), whatever PATH says.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"

    def git(*args):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)

    git("init", "-q")
    git("add", ".")
    pre_commit = [sys.executable, "-m", "pre_commit", "run", "--all-files", "--color", "never"]
    first = subprocess.run(pre_commit, cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 1, first.stdout + first.stderr
    assert "strip notebook outputs" in first.stdout and "files were modified by this hook" in first.stdout
    assert_clean(repo / "notebooks")
    git("add", ".")
    second = subprocess.run(pre_commit, cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stdout + second.stderr


def test_no_two_test_modules_share_a_basename():
    """The test folders are not packages: pytest imports each module by its basename, so a second
    tests/*/test_x.py would stop the whole run at collection."""
    from collections import Counter

    names = Counter(p.name for p in (REPO / "tests").rglob("test_*.py"))
    assert [n for n, c in names.items() if c > 1] == []
