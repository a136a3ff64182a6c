"""`aidevops doctor`: clean on this installation, and a failing line with the exact fix when a kernelspec, the
JupyterLab extension or the tracking store is missing — without touching the real installation.

Every case runs the real command in a child process whose Jupyter paths are private: kernelspecs go into a
temporary JUPYTER_PATH, config into a temporary JUPYTER_CONFIG_DIR, and "the extension is not installed" is a
virtual environment on top of this one (`--system-site-packages`: it imports aidevops_ext, but its prefix —
where Jupyter looks for extensions, kernels and server config — is empty).
"""

from __future__ import annotations

import http.server
import json
import os
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from aidevops_ext.doctor import OPTIONAL_TOOLS, labextension_name
from aidevops_ext.kernels import install_kernelspec, install_kernelspecs
from aidevops_ext.trainer.backend import cupy_available
from tests.conftest import REPO, child_venv

REQUIRED = (
    "package",
    "kernel aidevops",
    "kernel aidevops-gpu",
    "jupyterlab extension",
    "server extension",
    "workspace",
    "tracking store",
    "array backend",
)


def base_env(tmp: Path, **extra: str) -> dict[str, str]:
    """This environment minus anything pointing at shared state, with private Jupyter user dirs and workspace."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIDEVOPS_", "MLFLOW_", "JUPYTER_")) and k != "VIRTUAL_ENV"
    }
    env.update(
        JUPYTER_DATA_DIR=str(tmp / "user-data"),
        JUPYTER_CONFIG_DIR=str(tmp / "user-config"),
        AIDEVOPS_HOME=str(tmp / "workspace"),
        MPLBACKEND="Agg",
    )
    env.update(extra)
    return env


def with_kernels(tmp: Path, *names: str) -> str:
    """A JUPYTER_PATH entry holding the named shipped kernelspecs, as `aidevops init` writes them."""
    prefix = tmp / "kernels-prefix"
    for name in names:
        install_kernelspec(name, prefix)
    return str(prefix / "share" / "jupyter")


def doctor(env: dict[str, str], python: str = sys.executable, *args: str) -> tuple[int, dict]:
    out = subprocess.run(
        [python, "-m", "aidevops_ext.cli", "doctor", "--json", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.stdout.strip(), out.stderr
    return out.returncode, json.loads(out.stdout)


def by_name(report: dict) -> dict[str, dict]:
    return {c["name"]: c for c in report["checks"]}


@pytest.fixture
def installed(tmp_path) -> dict[str, str]:
    """This installation as `aidevops init` leaves it, seen through private Jupyter paths."""
    return base_env(tmp_path, JUPYTER_PATH=with_kernels(tmp_path, "aidevops", "aidevops-gpu"))


def test_clean_on_this_installation(installed, tmp_path):
    code, report = doctor(installed)
    checks = by_name(report)
    assert code == 0 and report["ok"] is True, report
    assert not [c for c in report["checks"] if c["status"] == "fail"]
    for name in REQUIRED:
        # warn, not fail, is allowed for the extension: a build in the checkout newer than the installed copy
        # (someone rebuilding the panels without reinstalling) is worth a line but JupyterLab still works.
        assert checks[name]["status"] in (("ok", "warn") if name == "jupyterlab extension" else ("ok",)), checks[name]
    assert checks["kernel aidevops"]["detail"].startswith(str(tmp_path / "kernels-prefix"))  # the private one was found
    assert f"'{labextension_name()}'" in checks["jupyterlab extension"]["detail"]
    assert checks["gpu"]["status"] == ("ok" if cupy_available() else "info")

    # The text report: one line per check, each naming its status, then a verdict.
    text = subprocess.run(
        [sys.executable, "-m", "aidevops_ext.cli", "doctor"], env=installed, capture_output=True, text=True, timeout=120
    )
    lines = text.stdout.splitlines()
    assert text.returncode == 0 and len(lines) == len(report["checks"]) + 1, text.stdout
    assert lines[-1] == "all required checks passed"
    assert all(re.match(r"^(ok|warn|-)\s+\S", line) for line in lines[:-1]), text.stdout


def test_optional_tools_are_reported_never_required(installed, tmp_path):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    code, report = doctor({**installed, "PATH": str(empty)})
    checks = by_name(report)
    assert code == 0, report
    for tool, (_, install) in OPTIONAL_TOOLS.items():
        assert checks[tool]["status"] == "info" and "not found (optional" in checks[tool]["detail"]
        assert install in checks[tool]["detail"]


def test_a_kernel_whose_interpreter_is_gone_fails_with_its_fix(tmp_path):
    # (A kernelspec missing altogether: the virtual-environment test below, whose prefix holds none.)
    broken = tmp_path / "broken" / "share" / "jupyter"
    install_kernelspecs(tmp_path / "broken")
    spec = json.loads((broken / "kernels" / "aidevops" / "kernel.json").read_text())
    spec["argv"][0] = str(tmp_path / "deleted-env" / "bin" / "python")
    (broken / "kernels" / "aidevops" / "kernel.json").write_text(json.dumps(spec))
    code, report = doctor(base_env(tmp_path, JUPYTER_PATH=str(broken)))
    check = by_name(report)["kernel aidevops"]
    assert code == 1 and report["ok"] is False
    assert check["status"] == "fail" and "deleted-env/bin/python, which does not exist" in check["detail"]
    assert check["fix"] == "aidevops init"


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A virtual environment on top of this one: aidevops_ext imports, its Jupyter prefix is empty."""
    root = tmp_path_factory.mktemp("doctor-venv") / "env"
    return child_venv(root)


def test_missing_kernels_and_extension_name_their_fixes_and_the_kernel_fix_works(venv, tmp_path):
    env = base_env(tmp_path, PATH=f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}")
    python = str(venv / "bin" / "python")
    code, report = doctor(env, python)
    checks = by_name(report)
    assert code == 1 and report["ok"] is False
    assert checks["kernel aidevops"]["status"] == "fail" and checks["kernel aidevops"]["fix"] == "aidevops init"
    assert checks["kernel aidevops-gpu"]["fix"] == "aidevops init"
    assert checks["kernel aidevops-gpu"]["status"] == ("fail" if cupy_available() else "warn")
    lab = checks["jupyterlab extension"]
    assert lab["status"] == "fail" and f"'{labextension_name()}' is not installed in any of {venv}" in lab["detail"]
    assert lab["fix"] == f"pip install -e {REPO}"
    server = checks["server extension"]
    assert server["status"] == "fail" and "'aidevops_ext' is not enabled" in server["detail"]
    assert server["fix"] == "jupyter server extension enable --sys-prefix aidevops_ext"
    assert checks["package"]["status"] == "ok" and checks["tracking store"]["status"] == "ok"

    # The fix as printed (`aidevops init`, here through this venv's interpreter) puts both kernels where Jupyter looks.
    init = subprocess.run(
        [python, "-m", "aidevops_ext.cli", "init", "--no-git"], env=env, capture_output=True, text=True, timeout=120
    )
    assert init.returncode == 0, init.stderr
    assert (venv / "share" / "jupyter" / "kernels" / "aidevops" / "kernel.json").is_file()
    _, report = doctor(env, python)
    checks = by_name(report)
    assert checks["kernel aidevops"]["status"] == checks["kernel aidevops-gpu"]["status"] == "ok", checks


def test_a_disabled_extension_names_the_enable_command_and_it_works(installed, tmp_path):
    name = labextension_name()
    labconfig = tmp_path / "user-config" / "labconfig"
    labconfig.mkdir(parents=True)
    (labconfig / "page_config.json").write_text(json.dumps({"disabledExtensions": {name: True}}))
    code, report = doctor(installed)
    lab = by_name(report)["jupyterlab extension"]
    assert code == 1 and lab["status"] == "fail" and "installed but disabled (user config)" in lab["detail"]
    assert lab["fix"] == f"jupyter labextension enable --level=user {name}"
    # Run it as printed (user level: the private JUPYTER_CONFIG_DIR), and the doctor is clean again.
    fixed = subprocess.run(
        [sys.executable, "-m", "jupyterlab.labextensions", *lab["fix"].split()[2:]],
        env=installed,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert fixed.returncode == 0, fixed.stderr
    code, report = doctor(installed)
    assert code == 0 and by_name(report)["jupyterlab extension"]["status"] == "ok", report


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_tracking_server_is_named_with_the_fix(installed):
    uri = f"http://127.0.0.1:{_closed_port()}"
    code, report = doctor({**installed, "MLFLOW_TRACKING_URI": uri})
    store = by_name(report)["tracking store"]
    assert code == 1 and store["status"] == "fail"
    assert f"MLflow server {uri} (MLFLOW_TRACKING_URI) is unreachable" in store["detail"]
    assert "unset MLFLOW_TRACKING_URI" in store["fix"]


def test_a_tracking_server_that_answers_passes(installed):
    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        uri = f"http://127.0.0.1:{server.server_address[1]}"
        code, report = doctor({**installed, "MLFLOW_TRACKING_URI": uri})
        assert code == 0 and by_name(report)["tracking store"]["detail"] == f"MLflow server {uri} answers", report
    finally:
        server.shutdown()
        server.server_close()


def test_a_corrupt_local_store_and_a_bad_backend_fail_with_their_fixes(installed, tmp_path):
    state = tmp_path / "workspace" / ".aidevops"
    state.mkdir(parents=True)
    (state / "mlflow.db").write_bytes(b"this is not sqlite" * 100)
    code, report = doctor({**installed, "AIDEVOPS_BACKEND": "tpu"})
    checks = by_name(report)
    assert code == 1
    assert (
        checks["tracking store"]["status"] == "fail"
        and "is not a readable MLflow database" in checks["tracking store"]["detail"]
    )
    assert checks["tracking store"]["fix"].startswith(f"mv {state / 'mlflow.db'} ")
    assert checks["array backend"]["status"] == "fail" and checks["array backend"]["fix"] == "unset AIDEVOPS_BACKEND"
    code, report = doctor({**installed, "AIDEVOPS_BACKEND": "cupy"})
    assert by_name(report)["array backend"]["status"] == ("ok" if cupy_available() else "fail")
    assert (state / "mlflow.db").read_bytes() == b"this is not sqlite" * 100  # the doctor only looks
