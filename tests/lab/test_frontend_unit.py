"""The frontend's jest unit tests (src/__tests__: API client, model and polling, components), run by pytest
so that the README's one test command covers them."""

from __future__ import annotations

import re
import shutil
import subprocess

from tests.conftest import REPO


def _jlpm(*args: str, timeout: int) -> subprocess.CompletedProcess:
    jlpm = shutil.which("jlpm")
    assert jlpm, "jlpm (from jupyter-builder, a JupyterLab dependency) is not on PATH; reinstall with pip install -e '.[test]'"
    return subprocess.run([jlpm, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)


def test_jest_unit_tests_pass():
    if not (REPO / "node_modules" / ".bin" / "jest").exists():  # pip's build step installs them; a bare clone may not have
        installed = _jlpm("install", timeout=600)
        assert installed.returncode == 0, installed.stdout[-3000:]
    out = _jlpm("jest", "--ci", "--runInBand", "--forceExit", timeout=300)  # forceExit: no open handle may hang CI
    report = out.stdout + out.stderr
    assert out.returncode == 0, report[-5000:]
    counts = re.search(r"Tests:\s+(\d+) passed, (\d+) total", report)
    assert counts and counts.group(1) == counts.group(2), report[-2000:]
    assert int(counts.group(2)) >= 12, "the api, model and components suites all ran"
