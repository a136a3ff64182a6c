"""The GitHub Actions workflow lints clean with actionlint and does what the README promises."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.conftest import REPO
from tests.support.tools import Linter

WORKFLOW = REPO / ".github" / "workflows" / "ci.yml"


lint = Linter("actionlint", "pip install -e '.[test]' installs it", "-no-color")


def test_workflow_lints_clean():
    lint.assert_clean(WORKFLOW)


def test_actionlint_does_catch_mistakes(tmp_path):
    broken = WORKFLOW.read_text().replace("${{ !cancelled() }}", "${{ !cancelled( }}", 1)
    broken = broken.replace("steps.report.outputs.run_dir", "steps.reprot.outputs.run_dir", 1)
    (tmp_path / "ci.yml").write_text(broken)
    out = lint(tmp_path / "ci.yml")
    assert out.returncode == 1
    assert 'property "reprot" is not defined' in out.stdout, out.stdout
    assert "unexpected end of input" in out.stdout, out.stdout


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def steps(workflow: dict) -> list[dict]:
    job = workflow["jobs"]["test"]
    return job["steps"]


def runs(workflow: dict) -> str:
    return "\n".join(s.get("run", "") for s in steps(workflow))


def test_runs_the_readme_test_command_and_the_ci_pipeline(workflow):
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert {"push", "pull_request"} <= set(triggers)
    readme = (REPO / "README.md").read_text()
    (test,) = re.search(r"^(scripts/test)$", readme, re.M).groups()
    text = runs(workflow)
    assert re.search(rf"^{test}$", text, re.M), "the workflow does not run the README's test command"
    assert "aidevops run pipelines/ci.yaml" in text
    assert "aidevops report latest --format markdown" in text and "aidevops report latest --format html" in text


def test_uploads_the_run_folder_and_comments_once_on_pull_requests(workflow):
    by_action = {s["uses"].split("@")[0]: s for s in steps(workflow) if "uses" in s}
    upload = by_action["actions/upload-artifact"]
    assert upload["with"]["path"] == "${{ steps.report.outputs.run_dir }}"
    assert upload["with"]["include-hidden-files"] is True  # the run folder lives under .aidevops/
    comment = by_action["actions/github-script"]
    assert "github.event_name == 'pull_request'" in comment["if"]
    script = comment["with"]["script"]
    assert "updateComment" in script and "createComment" in script and "aidevops-review-report" in script
    job = workflow["jobs"]["test"]
    assert job["permissions"]["pull-requests"] == "write"
