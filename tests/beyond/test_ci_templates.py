"""GitHub Actions, GitLab CI and Jenkins run the same job: the same aidevops commands, gate and archived run.

The shell each file runs is pulled out of it (workflow `run:` steps, GitLab `script`s, Jenkins `sh` steps),
and the `aidevops …` commands in it must be the same list in the same order, so the three cannot drift
apart. .gitlab-ci.yml is validated against GitLab's own schema (check-jsonschema bundles it: offline); no
Jenkinsfile validator runs without a Jenkins server, so its structure is checked here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sysconfig
import textwrap

import pytest
import yaml

from tests.conftest import REPO

GITHUB = REPO / ".github" / "workflows" / "ci.yml"
GITLAB = REPO / ".gitlab-ci.yml"
JENKINS = REPO / "Jenkinsfile"


def github_shell(text: str) -> list[str]:
    doc = yaml.safe_load(text)
    return [step["run"] for job in doc["jobs"].values() for step in job["steps"] if "run" in step]


def _flatten(items) -> list[str]:
    out: list[str] = []
    for item in items or []:
        out += _flatten(item) if isinstance(item, list) else [item]
    return out


def gitlab_shell(text: str) -> list[str]:
    doc = yaml.safe_load(text)
    jobs = [v for k, v in doc.items() if isinstance(v, dict) and k not in ("workflow", "default", "variables")]
    ordered = sorted(jobs, key=lambda j: ["test", "pipeline"].index(j.get("stage", "test")))
    return [
        line
        for job in ordered
        for key in ("before_script", "script", "after_script")
        for line in _flatten(job.get(key))
    ]


def jenkins_shell(text: str) -> list[str]:
    pattern = re.compile(r"\bsh\s+(?:'''(.*?)'''|\"\"\"(.*?)\"\"\"|'([^'\n]*)'|\"([^\"\n]*)\")", re.S)
    return [next(g for g in m.groups() if g is not None) for m in pattern.finditer(text)]


SHELL = {GITHUB: github_shell, GITLAB: gitlab_shell, JENKINS: jenkins_shell}


def aidevops_commands(shell: list[str]) -> list[str]:
    """The aidevops commands in order (each once), CI-specific folder variables written as $TMP."""
    found = []
    for block in shell:
        for match in re.finditer(r"(?<![\w/.-])aidevops ([^\n|;&)]*)", block):
            command = " ".join(match.group(1).split())
            command = re.sub(r'"\$\{?[A-Za-z_]+\}?/(?:[^"/]*/)*([^"/]+)"', r'"$TMP/\1"', command)
            found.append(command)
    return list(dict.fromkeys(found))


def gate_script(shell: list[str]) -> list[str]:
    """The Python of the quality-gate step, line by line."""
    (block,) = [b for b in shell if "gate_passed" in b and "<<'PY'" in b]
    body = block.split("<<'PY'", 1)[1].split("\nPY", 1)[0]
    return textwrap.dedent(body.strip("\n")).splitlines()


@pytest.fixture(scope="module")
def shells() -> dict:
    return {path: parse(path.read_text()) for path, parse in SHELL.items()}


def test_all_three_run_the_same_aidevops_commands(shells):
    commands = {path.name: aidevops_commands(shell) for path, shell in shells.items()}
    assert commands["ci.yml"] == [
        "init",
        "run pipelines/ci.yaml",
        "show latest --json",
        "report latest --format markdown",
        "report latest --format html",
        'report latest --self-contained --output "$TMP/pr-comment.md"',
    ]
    assert commands[".gitlab-ci.yml"] == commands["ci.yml"]
    assert commands["Jenkinsfile"] == commands["ci.yml"]


def test_a_drifted_file_is_caught():
    drifted = JENKINS.read_text().replace("aidevops report latest --format html\n", "")
    assert aidevops_commands(jenkins_shell(drifted)) != aidevops_commands(github_shell(GITHUB.read_text()))
    renamed = GITLAB.read_text().replace("aidevops run pipelines/ci.yaml", "aidevops run pipelines/default.yaml")
    assert aidevops_commands(gitlab_shell(renamed)) != aidevops_commands(github_shell(GITHUB.read_text()))


def test_all_three_run_the_readme_tests_and_the_same_gate(shells):
    readme = (REPO / "README.md").read_text()
    (test,) = re.search(r"^(scripts/test)$", readme, re.M).groups()
    for path, shell in shells.items():
        assert any(re.search(rf"(^|\s){test}(\s|$)", line) for line in shell), path.name
    gates = {path.name: gate_script(shell) for path, shell in shells.items()}
    assert gates[".gitlab-ci.yml"] == gates["ci.yml"] and gates["Jenkinsfile"] == gates["ci.yml"]
    assert 'sys.exit(0 if outcome["gate_passed"] else 1)' in gates["ci.yml"]


def test_all_three_keep_the_executed_notebooks_and_the_report_even_when_a_step_fails():
    github = yaml.safe_load(GITHUB.read_text())
    job = github["jobs"]["test"]
    upload = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-artifact"))
    assert "!cancelled()" in upload["if"] and upload["with"]["path"] == "${{ steps.report.outputs.run_dir }}"
    gitlab = yaml.safe_load(GITLAB.read_text())
    pipeline = gitlab[".ci-pipeline"]
    assert pipeline["artifacts"]["when"] == "always" and "aidevops-run/" in pipeline["artifacts"]["paths"]
    assert any('cp -r "$run_dir" aidevops-run' in line for line in pipeline["after_script"])
    jenkins = JENKINS.read_text()
    run_stage = jenkins[jenkins.index("stage('Run the CI pipeline')") : jenkins.index("stage('Quality gate')")]
    assert (
        "post {" in run_stage
        and "always {" in run_stage
        and "archiveArtifacts artifacts: 'aidevops-run/**" in run_stage
    )


def check_jsonschema() -> str:
    path = os.pathsep.join([sysconfig.get_path("scripts"), os.environ.get("PATH", "")])
    found = shutil.which("check-jsonschema", path=path)
    assert found, "check-jsonschema is missing: pip install -e '.[test]' installs it"
    return found


def validate_gitlab(path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [check_jsonschema(), "--builtin-schema", "vendor.gitlab-ci", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_gitlab_ci_is_valid_for_gitlab(tmp_path):
    out = validate_gitlab(GITLAB)
    assert out.returncode == 0, out.stdout + out.stderr
    broken = (
        GITLAB.read_text()
        .replace("timeout: 60 minutes", "timeout: [60]")
        .replace("policy: pull-push", "policy: sometimes")
    )
    (tmp_path / ".gitlab-ci.yml").write_text(broken)
    out = validate_gitlab(tmp_path / ".gitlab-ci.yml")
    assert out.returncode == 1 and "timeout" in out.stdout, out.stdout


def test_the_jenkinsfile_is_a_declarative_pipeline():
    text = JENKINS.read_text()
    code = re.sub(r"'''.*?'''|'[^'\n]*'|//[^\n]*", "", text, flags=re.S)  # strings and comments out
    assert code.count("{") == code.count("}") and code.count("(") == code.count(")")
    assert re.search(r"^pipeline \{", text, re.M)
    stages = re.findall(r"stage\('([^']+)'\)", text)
    assert stages == ["Tests", "Kernelspecs and nbdime git integration", "Run the CI pipeline", "Quality gate"]
    assert "timeout(time: 60, unit: 'MINUTES')" in text
