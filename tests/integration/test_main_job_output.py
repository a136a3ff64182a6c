"""What `aidevops run` prints, as a user runs it on real kernels: its step lines and what it left running, and
nothing from the kernels' transport (they talk over IPC in a private temp folder, so ipykernel has no TCP
warning to give, and no socket or connection file lands in the project)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import write_notebook

SPEC = """
name: tiny
steps:
  first:
    notebook: nb/first.ipynb
    outputs: [out.txt]
  second:
    notebook: nb/second.ipynb
    needs: [first]
"""
INJECTED = "step_dir = None\nupstream = None\n"


def _aidevops(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "AIDEVOPS_BACKEND")}
    env["AIDEVOPS_HOME"] = str(root)
    return subprocess.run([sys.executable, "-m", "aidevops_ext.cli", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)


def test_a_run_prints_its_steps_without_kernel_transport_warnings_or_leftover_sockets(tmp_path):
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "tiny.yaml").write_text(SPEC)
    write_notebook(tmp_path / "nb" / "first.ipynb", INJECTED,
                   "import os\nopen(os.path.join(step_dir, 'out.txt'), 'w').write('1')\nprint('first done')")
    write_notebook(tmp_path / "nb" / "second.ipynb", INJECTED, "print(open(upstream['first'] + '/out.txt').read())")

    result = _aidevops(tmp_path, "run", "tiny", "--no-track")

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "first" in result.stdout and "second" in result.stdout, output
    for noise in ("IPKernelApp", "without encryption", "WARNING |"):
        assert noise not in output, f"the main job printed kernel noise ({noise!r}):\n{output}"
    assert "running now" not in output, "a run that deployed nothing must not claim something runs"
    leftovers = [p for p in tmp_path.rglob("*") if "-ipc-" in p.name or p.name.startswith(("kernel-", "k-"))]
    assert leftovers == [], f"kernel connection files or sockets in the project: {leftovers}"
