"""`pip install -e .` ships the labextension and enables the server extension; importing the package stays cheap."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import aidevops_ext
from tests.conftest import REPO

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _jupyter(*args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "jupyter", *args], capture_output=True, text=True, timeout=120)
    return ANSI.sub("", out.stdout + out.stderr)


def test_the_labextension_is_installed_enabled_and_ok():
    listing = _jupyter("labextension", "list")
    assert re.search(rf"aidevops-ext v{re.escape(aidevops_ext.__version__)} enabled\s+OK", listing), listing


def test_the_server_extension_is_enabled_and_ok():
    listing = _jupyter("server", "extension", "list")
    assert re.search(r"aidevops_ext enabled", listing), listing
    assert re.search(rf"aidevops_ext {re.escape(aidevops_ext.__version__)} OK", listing), listing


def test_entry_points_name_the_built_extension():
    (paths,) = aidevops_ext._jupyter_labextension_paths()
    assert paths["dest"] == json.loads((REPO / "package.json").read_text())["name"]
    assert aidevops_ext._jupyter_server_extension_points() == [{"module": "aidevops_ext"}]
    assert json.loads((REPO / "package.json").read_text())["version"] == aidevops_ext.__version__


def test_importing_the_package_loads_no_jupyter_server_or_tornado():
    code = "import sys, aidevops_ext; print(sorted(m for m in ('tornado', 'jupyter_server', 'mlflow') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
