"""The model server's import stays light: a server process starts fast and carries no notebook machinery."""

from __future__ import annotations

import ast
import json
import subprocess
import sys

from tests.conftest import REPO

HEAVY = {
    "mlflow",
    "papermill",
    "nbclient",
    "nbformat",
    "jupyter_server",
    "tornado",
    "sklearn",
    "numba",
    "cupy",
    "matplotlib",
}
OWN_ABOVE_SERVING = ("pipeline", "deploy", "loop", "review", "jobs", "cli", "cli_loop", "routes", "api", "export")


def test_importing_the_server_app_loads_no_heavy_or_higher_layer_module():
    code = "import json, sys; import aidevops_ext.serving.app\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    loaded = json.loads(out.stdout)
    assert sorted({m.split(".")[0] for m in loaded} & HEAVY) == []
    assert [m for m in loaded if m.startswith("aidevops_ext.") and m.split(".")[1] in OWN_ABOVE_SERVING] == []


def test_no_deploy_module_imports_the_closed_loop():
    """deploy/ reads retraining records from retrainings.py and never imports loop.py, not even inside a function
    (loop.py imports deploy/; the other direction would be a cycle)."""
    found = []
    for path in sorted((REPO / "aidevops_ext" / "deploy").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [f"{node.module or ''}.{a.name}" for a in node.names]
                if any(n.split(".")[-1] == "loop" or n.endswith(".loop") or n == "loop" for n in names):
                    found.append(f"{path.name}:{node.lineno}")
            elif isinstance(node, ast.Import) and any(a.name == "aidevops_ext.loop" for a in node.names):
                found.append(f"{path.name}:{node.lineno}")
    assert found == []
