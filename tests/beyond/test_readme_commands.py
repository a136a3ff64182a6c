"""The README's "Growing beyond one machine" commands run as written (those that need no cluster or daemon)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys

import yaml

from tests.conftest import REPO


def section_commands() -> list[list[str]]:
    text = (REPO / "README.md").read_text()
    section = text.split("## Growing beyond one machine", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    return [shlex.split(line) for line in lines if line]


def test_the_section_names_every_engine():
    commands = [" ".join(c[:3]) for c in section_commands()]
    for expected in ("mlflow server --host", "docker build -t", "docker run -p", "kubectl apply -k",
                     "aidevops export argo", "argo submit default-workflow.yaml"):
        assert any(c.startswith(expected) for c in commands), expected
    assert any(" ".join(c).startswith("aidevops deploy digits-classifier@champion --target kubernetes --dry-run")
               for c in section_commands())


def test_the_export_and_render_commands_work_and_kubectl_finds_the_overlays(tmp_path):
    shutil.copytree(REPO / "notebooks", tmp_path / "notebooks")
    shutil.copytree(REPO / "pipelines", tmp_path / "pipelines")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AIDEVOPS_"))}
    env["AIDEVOPS_ACTOR"] = "readme-tests"
    ran = 0
    for command in section_commands():
        if command[:2] in (["aidevops", "export"], ["aidevops", "deploy"]) and ("--dry-run" in command or command[1] == "export"):
            out = subprocess.run([sys.executable, "-m", "aidevops_ext.cli", *command[1:]], cwd=tmp_path, env=env,
                                 capture_output=True, text=True, timeout=120)
            assert out.returncode == 0, f"{command}: {out.stderr}"
            ran += 1
        elif command[:3] == ["kubectl", "apply", "-k"]:
            folder = tmp_path / command[3]
            out = subprocess.run([shutil.which("kubectl"), "kustomize", str(folder)], capture_output=True, text=True,
                                 timeout=120)
            assert out.returncode == 0, f"{command}: {out.stderr}"
            ran += 1
    assert ran == 4
    workflow = yaml.safe_load((tmp_path / "default-workflow.yaml").read_text())
    train = next(t for t in workflow["spec"]["templates"][-1]["dag"]["tasks"] if t["name"] == "train")
    assert {"name": "epochs", "value": "40"} in train["arguments"]["parameters"]
