"""`aidevops new`: a working project from the templates shipped in the package, written all or nothing."""

from __future__ import annotations

import filecmp
import importlib.util
import os
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from aidevops_ext import project
from aidevops_ext.cli import main
from aidevops_ext.errors import ConfigError
from aidevops_ext.pipeline.spec import load_spec, resolve_spec_path
from aidevops_ext.workspace import Workspace
from tests.conftest import REPO

COMMON_FILES = [".gitignore", ".gitattributes", ".pre-commit-config.yaml", ".github/workflows/ci.yml", "README.md"]


def new(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["new", *args])
    return result.exit_code, result.output


def listing(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def test_list_names_every_template_folder_with_its_description():
    code, out = new("--list")
    assert code == 0
    folders = sorted(d.name for d in project.TEMPLATES_DIR.iterdir() if (d / "template.yaml").is_file())
    assert [line.split()[0] for line in out.splitlines()] == folders
    assert "digits" in folders and all(len(line.split(maxsplit=1)) == 2 for line in out.splitlines())


def test_new_project_has_the_common_files_and_the_digits_template(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out = new("churn-model")
    assert code == 0, out
    root = tmp_path / "churn-model"
    assert "cd churn-model && aidevops run" in out
    for rel in COMMON_FILES + ["notebooks/02_train.ipynb", "pipelines/default.yaml", "pipelines/ci.yaml"]:
        assert (root / rel).is_file(), rel
    assert not list(root.rglob("template.yaml"))
    assert (root / "README.md").read_text().startswith("# churn-model\n")
    assert ".aidevops/" in (root / ".gitignore").read_text().split()
    assert "*.ipynb diff=jupyternotebook merge=jupyternotebook" in (root / ".gitattributes").read_text()
    hooks = yaml.safe_load((root / ".pre-commit-config.yaml").read_text())["repos"][0]["hooks"]
    assert hooks[0]["entry"] == "python -m aidevops_ext.review.hygiene"
    # `aidevops run` inside the project finds it as the workspace and loads its default pipeline.
    ws = Workspace.discover(root / "notebooks")
    assert ws.root == root
    spec = load_spec(resolve_spec_path(None, ws.root), ws.root)
    assert spec.name == "default" and all(s.notebook.is_relative_to(root) for s in spec.steps.values())


def test_digits_template_is_the_repository_notebooks_and_pipelines(tmp_path):
    root = project.new_project(tmp_path / "p", "digits")
    for folder in ("notebooks", "pipelines"):
        ours = sorted(p.name for p in (REPO / folder).iterdir() if p.is_file())
        assert sorted(p.name for p in (root / folder).iterdir()) == ours
        match, mismatch, errors = filecmp.cmpfiles(REPO / folder, root / folder, ours, shallow=False)
        assert not mismatch and not errors


def test_an_empty_folder_is_filled_and_a_non_empty_one_refused_untouched(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    inode = empty.stat().st_ino
    project.new_project(empty)
    assert (empty / "pipelines" / "default.yaml").is_file()
    assert empty.stat().st_ino == inode, "the folder is filled, not replaced (it may be a shell's working directory)"
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    code, out = new(str(busy))
    assert code == 2
    assert out == f"error: {busy} already exists and is not an empty folder; choose a new folder name.\n"
    assert listing(busy) == ["notes.txt"] and (busy / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy", "empty"], "no temporary folder left behind"


def test_unknown_template_is_one_sentence_naming_the_templates(tmp_path):
    with pytest.raises(
        ConfigError, match=r"^there is no template 'nope'; templates are: .*digits.*\(see `aidevops new --list`\)\.$"
    ):
        project.new_project(tmp_path / "p", "nope")
    assert not (tmp_path / "p").exists()


@pytest.fixture
def templates(tmp_path, monkeypatch):
    """A templates folder of our own: the shipped _common plus templates a test writes."""
    folder = tmp_path / "templates"
    shutil.copytree(project.TEMPLATES_DIR / "_common", folder / "_common")
    monkeypatch.setattr(project, "TEMPLATES_DIR", folder)
    return folder


def test_a_failure_half_way_leaves_nothing(tmp_path, templates):
    broken = templates / "broken"
    (broken / "notebooks").mkdir(parents=True)
    (broken / "notebooks" / "a.ipynb").write_text("{}")
    # Its repository folder does not exist: the copy fails after _common and notebooks/ were written.
    (broken / "template.yaml").write_text("description: broken\nfrom_repository: [no-such-folder]\n")
    places = tmp_path / "places"
    places.mkdir()
    with pytest.raises(ConfigError, match="lacks its no-such-folder/ folder"):
        project.new_project(places / "p", "broken")
    assert listing(places) == []


def test_a_template_needing_a_missing_module_is_refused_naming_how_to_install_it(tmp_path, templates):
    (templates / "needy").mkdir()
    (templates / "needy" / "template.yaml").write_text("description: x\nrequires: [no_such_module_xyz]\n")
    with pytest.raises(
        ConfigError,
        match=r"needs no_such_module_xyz, which is not installed here; "
        r"run pip install no_such_module_xyz first\.$",
    ):
        project.new_project(tmp_path / "p", "needy")
    assert not (tmp_path / "p").exists()


def test_a_template_needing_torch_names_the_bench_extra(tmp_path, templates, monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(  # torch is installed where the suite runs: this template asks for it as if it were not
        importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real_find_spec(name, *a)
    )
    (templates / "torchy").mkdir()
    (templates / "torchy" / "template.yaml").write_text("description: x\nrequires: [torch]\n")
    code, out = new(str(tmp_path / "p"), "--template", "torchy")
    assert code == 2
    assert out == (
        "error: template 'torchy' needs torch, which is not installed here; "
        'run pip install "aidevops-ext[bench]" first.\n'
    )


def test_a_project_from_a_template_with_requirements_lists_them_for_its_ci(tmp_path, templates):
    (templates / "needs-numpy").mkdir()
    (templates / "needs-numpy" / "template.yaml").write_text("description: x\nrequires: [numpy]\n")
    root = project.new_project(tmp_path / "p", "needs-numpy")
    assert (root / "requirements.txt").read_text() == "numpy\n"
    # torch maps to the extra that installs it (the refusal above names the same).
    assert project._install_names(["torch", "numpy"]) == ["aidevops-ext[bench]", "numpy"]


def test_dotfiles_of_the_templates_are_shipped_in_the_package_folder():
    # hatch's wheel takes every file under aidevops_ext/ that git does not ignore: the dotfiles must be tracked.
    tracked = subprocess.run(
        ["git", "ls-files", "aidevops_ext/templates/_common"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    assert sorted(Path(p).relative_to("aidevops_ext/templates/_common").as_posix() for p in tracked) == sorted(
        COMMON_FILES
    )


def test_the_project_workflow_lints_clean_and_runs_the_ci_pipeline():
    workflow = project.TEMPLATES_DIR / "_common" / ".github" / "workflows" / "ci.yml"
    path = os.pathsep.join([sysconfig.get_path("scripts"), os.environ.get("PATH", "")])
    actionlint = shutil.which("actionlint", path=path)
    assert actionlint, "actionlint is missing: pip install -e '.[test]' installs it"
    out = subprocess.run([actionlint, "-no-color", str(workflow)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout == "", out.stdout + out.stderr
    runs = [s.get("run", "") for s in yaml.safe_load(workflow.read_text())["jobs"]["pipeline"]["steps"]]
    assert "aidevops run ci" in runs


@pytest.mark.parametrize("name", [t.name for t in project.list_templates()])
def test_every_template_makes_a_project_whose_pipelines_load(tmp_path, name):
    template = project.get_template(name)
    if template.missing_modules():
        pytest.skip(f"template '{name}' needs {', '.join(template.missing_modules())}, not installed here")
    root = project.new_project(tmp_path / name, name)
    specs = sorted((root / "pipelines").glob("*.yaml"))
    assert (root / "pipelines" / "default.yaml") in specs and (root / "pipelines" / "ci.yaml") in specs
    for path in specs:
        spec = load_spec(path, root)  # every notebook it names exists (in the project or shipped)
        assert spec.steps
