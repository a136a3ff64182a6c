"""The README's test command (scripts/test): it installs what the tests need, or says how, before pytest runs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from tests.conftest import REPO

SCRIPT = REPO / "scripts" / "test"


def _fake_bin(folder: Path, *, uid: int, tools: tuple[str, ...]) -> Path:
    """A PATH holding only `dirname`, a fake `id`, a `python` that records its arguments, and the named tools."""
    folder.mkdir()
    os.symlink(shutil.which("dirname"), folder / "dirname")
    scripts = {"id": f"#!/bin/sh\necho {uid}\n", "python": f'#!/bin/sh\necho "$@" >> {folder / "python.calls"}\n'}
    scripts.update({tool: "#!/bin/sh\nexit 0\n" for tool in tools})
    for name, text in scripts.items():
        (folder / name).write_text(text)
        (folder / name).chmod(0o755)
    return folder


def _run(bin_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["/bin/bash", str(SCRIPT), *args],
        env={"PATH": str(bin_dir), "HOME": str(bin_dir)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_readme_names_one_test_command_and_ci_runs_exactly_it():
    readme = (REPO / "README.md").read_text()
    assert re.search(r"^scripts/test$", readme, re.M), "the README's test command is not `scripts/test`"
    ci_commands = [
        line
        for line in (REPO / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.startswith(("#", "set ", "cd "))
    ]
    assert ci_commands == ["scripts/test"]


def test_without_root_missing_tools_print_the_install_command_and_nothing_runs(tmp_path):
    bin_dir = _fake_bin(tmp_path / "bin", uid=1000, tools=("node",))
    out = _run(bin_dir, "-m", "quick")
    assert out.returncode == 1
    assert (
        "sudo apt-get update && sudo apt-get install -y --no-install-recommends chromium prometheus kubernetes-client"
    ) in out.stderr
    assert not (bin_dir / "python.calls").exists(), "pip or pytest ran although system packages were missing"


def test_with_every_tool_present_it_installs_the_extras_then_passes_its_arguments_to_pytest(tmp_path):
    bin_dir = _fake_bin(tmp_path / "bin", uid=1000, tools=("node", "google-chrome", "prometheus", "kubectl"))
    out = _run(bin_dir, "-m", "quick", "-x")
    assert out.returncode == 0, out.stderr
    calls = (bin_dir / "python.calls").read_text().splitlines()
    assert calls == ["-m pip install -q -e .[test,bench]", "-m pytest -m quick -x"]


def test_without_node_it_stops_before_installing(tmp_path):
    bin_dir = _fake_bin(tmp_path / "bin", uid=1000, tools=("chromium", "prometheus", "kubectl"))
    out = _run(bin_dir)
    assert out.returncode == 1 and "Node.js 20.19 or newer" in out.stderr
    assert not (bin_dir / "python.calls").exists()
