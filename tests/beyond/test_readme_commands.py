"""The README's "Growing beyond one machine" commands run as written (those that need no cluster or daemon)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess

import click
import yaml

from tests.conftest import REPO
from tests.support.cli import run_cli
from tests.support.projects import copy_project


def section_commands() -> list[list[str]]:
    text = (REPO / "README.md").read_text()
    section = text.split("## Growing beyond one machine", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    return [shlex.split(line) for line in lines if line]


def test_the_section_names_every_engine():
    commands = [" ".join(c[:3]) for c in section_commands()]
    for expected in (
        "mlflow server --host",
        "docker build -t",
        "docker run -p",
        "kubectl apply -k",
        "aidevops export argo",
        "argo submit default-workflow.yaml",
    ):
        assert any(c.startswith(expected) for c in commands), expected
    assert any(
        " ".join(c).startswith("aidevops deploy digits-classifier@champion --target kubernetes --dry-run")
        for c in section_commands()
    )


def test_the_export_and_render_commands_work_and_kubectl_finds_the_overlays(tmp_path):
    copy_project(tmp_path)
    ran = 0
    for command in section_commands():
        if command[:2] in (["aidevops", "export"], ["aidevops", "deploy"]) and (
            "--dry-run" in command or command[1] == "export"
        ):
            out = run_cli(*command[1:], cwd=tmp_path, env={"AIDEVOPS_ACTOR": "readme-tests"}, timeout=120)
            assert out.returncode == 0, f"{command}: {out.stderr}"
            ran += 1
        elif command[:3] == ["kubectl", "apply", "-k"]:
            folder = tmp_path / command[3]
            out = subprocess.run(
                [shutil.which("kubectl"), "kustomize", str(folder)], capture_output=True, text=True, timeout=120
            )
            assert out.returncode == 0, f"{command}: {out.stderr}"
            ran += 1
    assert ran == 5  # the Workflow and CronWorkflow exports, the dry-run deploy, the two overlays
    workflow = yaml.safe_load((tmp_path / "default-workflow.yaml").read_text())
    train = next(t for t in workflow["spec"]["templates"][-1]["dag"]["tasks"] if t["name"] == "train")
    assert {"name": "epochs", "value": "40"} in train["arguments"]["parameters"]


# --------------------------------------------------------------------------- the CLI reference table


def cli_table_spans() -> list[str]:
    """The code spans of the first column of the README's `## CLI` table (`\\|` unescaped)."""
    text = (REPO / "README.md").read_text()
    section = text.split("\n## CLI\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    spans = []
    for row in rows:
        first = re.split(r"(?<!\\)\|", row)[1]
        spans += [s.replace("\\|", "|") for s in re.findall(r"`([^`]+)`", first)]
    return spans


def cli_commands() -> dict[str, click.Command]:
    """Every command `aidevops --help` lists, subcommands of groups as 'group sub'."""

    from aidevops_ext.cli import main

    found = {}
    for name, command in main.commands.items():
        if isinstance(command, click.Group):
            found.update({f"{name} {sub}": c for sub, c in command.commands.items()})
        else:
            found[name] = command
    return found


def span_command(span: str, commands: dict) -> str | None:
    """The command a span documents: `aidevops NAME …`, or `NAME …` after a ` / ` in the same cell."""
    words = span.split()
    if words and words[0] == "aidevops":
        words = words[1:]
    for n in (2, 1):
        if " ".join(words[:n]) in commands:
            return " ".join(words[:n])
    return None


def test_the_cli_table_lists_every_command_with_options_that_exist():
    commands = cli_commands()
    help_text = run_cli("--help", timeout=60).stdout
    listed = re.findall(r"^  (\S+)\s", help_text.split("Commands:", 1)[1], re.M)
    assert listed and set(listed) == {name.split()[0] for name in commands}, "cli_commands() sees what --help lists"
    documented: dict[str, list[str]] = {}
    for span in cli_table_spans():
        name = span_command(span, commands)
        assert name is not None, f"the CLI table documents `{span}`, which is no aidevops command"
        documented.setdefault(name, []).append(span)
    missing = sorted(set(commands) - set(documented))
    assert not missing, f"commands missing from the README's CLI table: {missing}"
    for name, spans in documented.items():
        options = {opt for param in commands[name].params for opt in getattr(param, "opts", [])}
        for span in spans:
            for option in re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", span):
                assert option in options, f"`{span}`: {name} has no option {option}"


def test_the_cli_table_check_fails_for_a_missing_command(monkeypatch):
    # The check above must be able to fail: a CLI with one more command than the table documents.
    import click

    from aidevops_ext import cli

    extra = click.Command("frobnicate", callback=lambda: None)
    monkeypatch.setitem(cli.main.commands, "frobnicate", extra)
    documented = {span_command(s, cli_commands()) for s in cli_table_spans()}
    assert "frobnicate" in set(cli_commands()) - documented
