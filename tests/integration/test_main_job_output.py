"""What `aidevops run` prints, as a user runs it on real kernels: its step lines and what it left running, and
nothing from the kernels' transport (they talk over IPC in a private temp folder, so ipykernel has no TCP
warning to give, and no socket or connection file lands in the project)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import write_notebook
from tests.deploy.conftest import (  # noqa: F401 - a real registry and supervised servers
    MODEL,
    deploy_env,
    deployer,  # noqa: F401
    reg,
)
from tests.support.cli import run_cli

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
    return run_cli(*args, cwd=root, env={"AIDEVOPS_HOME": str(root)})


def test_a_run_prints_its_steps_without_kernel_transport_warnings_or_leftover_sockets(tmp_path):
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "tiny.yaml").write_text(SPEC)
    write_notebook(
        tmp_path / "nb" / "first.ipynb",
        INJECTED,
        "import os\nopen(os.path.join(step_dir, 'out.txt'), 'w').write('1')\nprint('first done')",
    )
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


DEPLOY_SPEC = """
name: ships
steps:
  deploy:
    notebook: nb/deploy.ipynb
"""


def test_a_run_that_deployed_ends_with_its_url_its_retraining_and_how_to_stop_them(reg, deployer):  # noqa: F811
    """A step that names a live deployment in deployment.json (as aidevops:deploy does), while a retraining
    of it holds its lock: the run's last lines say both, with the deployment's URL, log and undeploy command."""
    from aidevops_ext import retrainings

    name = "left-running"
    dep = deployer(f"{MODEL}@champion", name).deployment
    ws = reg.ws
    (reg.root / "pipelines").mkdir(exist_ok=True)
    (reg.root / "pipelines" / "ships.yaml").write_text(DEPLOY_SPEC)
    write_notebook(
        reg.root / "nb" / "deploy.ipynb",
        INJECTED,
        f"import json, os\njson.dump({{'name': {name!r}}}, open(os.path.join(step_dir, 'deployment.json'), 'w'))",
    )
    rid = retrainings.start(ws, deployment=name, model=MODEL, trigger="manual", status=retrainings.RUNNING, started=0.0)
    lock = retrainings.retraining_lock(ws, name)  # held as `aidevops retrain` holds it while it runs
    try:
        result = _aidevops(reg.root, "run", "ships", "--no-track")
    finally:
        lock.close()
        retrainings.update(ws, rid, status=retrainings.FAILED, message="test finished")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    tail = result.stdout[result.stdout.index("running now") :]
    assert f"'{name}'  {dep.url}" in tail, tail
    assert f"#{rid}" in tail and f"log {dep.log_path}" in tail, tail
    assert tail.rstrip().endswith(f"aidevops undeploy {name}  (this ends its retraining too)"), tail

    quiet = _aidevops(reg.root, "run", "ships", "--no-track", "--force")
    assert quiet.returncode == 0 and "retraining" not in quiet.stdout, "a released lock means no retraining runs"
