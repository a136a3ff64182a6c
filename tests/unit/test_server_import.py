"""The model server's import stays light: a server process starts fast and carries no notebook machinery."""

from __future__ import annotations

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
