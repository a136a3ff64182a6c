"""The project's linters and formatters report nothing: ruff (lint + format) and mypy on the Python, ESLint and
Prettier on the extension's TypeScript in src/ (configured in pyproject.toml, eslint.config.js and .prettierrc.json;
the same commands run as pre-commit hooks)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def run(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def jlpm(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    found = shutil.which("jlpm")
    assert found, "jlpm (from jupyter-builder, a JupyterLab dependency) is not on PATH; pip install -e '.[test]'"
    if not (REPO / "node_modules" / ".bin" / "eslint").exists():  # a bare clone: the devDependencies first
        installed = run(found, "install", timeout=600)
        assert installed.returncode == 0, installed.stdout[-3000:]
    return run(found, *args, timeout=timeout)


def test_ruff_finds_nothing_to_report():
    out = run(sys.executable, "-m", "ruff", "check", "--no-cache", ".")
    assert out.returncode == 0, out.stdout[-5000:] + out.stderr[-2000:]


def test_ruff_format_would_change_nothing():
    out = run(sys.executable, "-m", "ruff", "format", "--check", "--no-cache", ".")
    assert out.returncode == 0, out.stdout[-5000:] + out.stderr[-2000:]


def test_mypy_finds_no_type_errors_in_the_package():
    # pyproject's [tool.mypy] says what is checked (aidevops_ext/) and how; its cache makes a second run quick.
    out = run(sys.executable, "-m", "mypy", timeout=600)
    assert out.returncode == 0 and "Success: no issues found" in out.stdout, out.stdout[-8000:] + out.stderr[-2000:]


def test_eslint_lints_every_source_file_and_finds_nothing():
    out = jlpm("eslint", "--format", "json", "src")
    assert out.stdout.strip().startswith("["), out.stdout[-3000:] + out.stderr[-3000:]
    report = json.loads(out.stdout)
    findings = [
        f"{r['filePath']}:{m.get('line')}: {m.get('ruleId')} {m['message']}" for r in report for m in r["messages"]
    ]
    assert findings == [], "\n".join(findings[:50])
    linted = {str(Path(r["filePath"]).relative_to(REPO)) for r in report}
    sources = {str(p.relative_to(REPO)) for p in (REPO / "src").rglob("*") if p.suffix in (".ts", ".tsx")}
    assert linted == sources, f"ESLint's config leaves out {sorted(sources - linted)}"
    assert out.returncode == 0, out.stderr[-3000:]


def test_prettier_would_change_no_source_file():
    out = jlpm("prettier", "--list-different", "src")
    assert out.returncode == 0 and out.stdout.strip() == "", f"not formatted (jlpm prettier):\n{out.stdout[-3000:]}"
