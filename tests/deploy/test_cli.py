"""The deployment commands as a user runs them: output shape, and user errors as one sentence with a non-zero exit.

`deploy` runs as a real process (the supervisor it starts must outlive the command); the other commands
mostly run in-process through click's runner, which parses and prints exactly as the console script
does, without paying MLflow's import for every call on a 2-core machine.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from aidevops_ext.deploy import manager
from tests.deploy.conftest import ENV_VARS, MODEL


def run(reg, *args: str) -> subprocess.CompletedProcess:
    """The CLI in this process (click's runner), with the result shaped like a finished process."""
    from click.testing import CliRunner

    from aidevops_ext.cli import main

    result = CliRunner().invoke(main, list(args), env={"AIDEVOPS_HOME": str(reg.root), "AIDEVOPS_ACTOR": "cli-tests"})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


def cli(reg, *args: str, timeout: int = 180) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    env.update(AIDEVOPS_HOME=str(reg.root), AIDEVOPS_ACTOR="cli-tests", MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false")
    return subprocess.run(
        [sys.executable, "-m", "aidevops_ext.cli", *args],
        cwd=reg.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def one_sentence_error(out: subprocess.CompletedProcess, *needles: str) -> str:
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    assert "Traceback" not in out.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def cli_deployment(reg):
    """A deployment started through the CLI, stopped through the CLI."""
    out = cli(reg, "deploy", f"{MODEL}@champion", "--name", "cli-dep", "--reason", "first release")
    try:
        assert out.returncode == 0, out.stderr
        yield out
    finally:
        run(reg, "undeploy", "cli-dep")
        try:
            manager.undeploy(reg.ws, "cli-dep")  # belt and braces if the CLI failed
        except Exception:  # noqa: BLE001
            pass


def test_deploy_list_switch_rollback_undeploy(reg, cli_deployment):
    first = cli_deployment.stdout.splitlines()
    dep = manager.get(reg.ws, "cli-dep")
    assert first[0] == f"deployed {MODEL} v1 ({MODEL}@champion) as 'cli-dep' on {dep.url}"
    assert any(
        line.strip().startswith("checked") and "predictions equal the registry model's" in line for line in first
    )
    curl = next(line for line in first if line.strip().startswith("try"))
    assert f"curl -s -X POST {dep.url}/invocations" in curl
    assert dep.admin_token and dep.admin_token not in cli_deployment.stdout + cli_deployment.stderr

    listing = run(reg, "deployments")
    assert listing.returncode == 0
    row = next(line for line in listing.stdout.splitlines() if line.startswith("cli-dep"))
    assert f"{MODEL}@champion" in row and "running" in row and "v1" in row and dep.url in row

    out = cli(reg, "deploy", f"{MODEL}/2", "--name", "cli-dep")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"switched 'cli-dep' from v1 to v2 on {dep.url}")
    assert run(reg, "deploy", f"{MODEL}/2", "--name", "cli-dep").stdout.startswith("'cli-dep' already serves")

    out = run(reg, "rollback", "cli-dep", "--reason", "v2 looks off")
    assert (out.returncode, out.stdout.strip()) == (0, "rolled back 'cli-dep' from v2 to v1")

    detail = run(reg, "deployments", "cli-dep")
    assert detail.returncode == 0
    text = detail.stdout
    assert "active    v1" in text and "previous  v2" in text and "history" in text
    assert "first release" in text and "v2 looks off" in text and "cli-tests" in text
    data = json.loads(run(reg, "deployments", "cli-dep", "--json").stdout)
    assert [h["operation"] for h in data["history"]] == ["deploy", "deploy", "rollback"]
    assert "admin_token" not in json.dumps(data)

    out = run(reg, "undeploy", "cli-dep")
    assert (out.returncode, out.stdout.strip()) == (0, "stopped 'cli-dep'")
    assert manager.get(reg.ws, "cli-dep").state == "stopped"
    out = run(reg, "rollback", "cli-dep")
    one_sentence_error(out, "'cli-dep' is stopped, not running", "aidevops deploy")


def test_unknown_deployment_is_one_sentence(reg):
    for args in (
        ("rollback", "nope"),
        ("promote", "nope"),
        ("undeploy", "nope"),
        ("deployments", "nope"),
        ("canary", "nope", "2", "--share", "0.1"),
    ):
        one_sentence_error(run(reg, *args), "no deployment named 'nope'")


def test_bad_versions_and_references_are_one_sentence(reg):
    one_sentence_error(
        cli(reg, "deploy", f"{MODEL}/99"), f"Model '{MODEL}' has no version 99", "its versions: 1, 2, 3, 4"
    )
    one_sentence_error(run(reg, "deploy", f"{MODEL}@nosuchalias"), "has no alias 'nosuchalias'", "champion")
    one_sentence_error(run(reg, "deploy", "no-such-model@champion"), "No registered model named 'no-such-model'")
    one_sentence_error(run(reg, "deploy", "not a ref; rm -rf /"), "is not a model reference")
    one_sentence_error(
        run(reg, "deploy", f"{MODEL}/4", "--name", "cli-broken"), "v4 was refused", "nothing was deployed"
    )


def test_port_in_use_is_one_sentence(reg):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        out = cli(reg, "deploy", f"{MODEL}@champion", "--name", "cli-port", "--port", str(port))
    one_sentence_error(out, f"Port {port} on 127.0.0.1 is already in use", "--port")
    assert "cli-port" not in [d.name for d in manager.list_deployments(reg.ws)]


def test_canary_and_rollback_errors_name_the_fix(reg, deployer):
    deployer(f"{MODEL}@champion", "cli-errs")
    one_sentence_error(run(reg, "rollback", "cli-errs"), "no previous version to roll back to")
    one_sentence_error(run(reg, "promote", "cli-errs"), "no canary to promote")
    one_sentence_error(run(reg, "canary", "cli-errs", "2", "--share", "1.5"), "between 0 and 1")
    one_sentence_error(run(reg, "canary", "cli-errs", "2"), "--share")
    one_sentence_error(run(reg, "canary", "cli-errs", "two", "--share", "0.1"), "is not a model version")
    one_sentence_error(
        run(reg, "deploy", f"{MODEL}@champion", "--name", "cli-errs", "--port", "1"),
        "already listens on port",
        "undeploy it first",
    )
    out = run(reg, "canary", "cli-errs", "2", "--share", "0.2")
    assert out.returncode == 0, out.stderr
    assert (
        out.stdout.strip()
        == "'cli-errs': canary v2 gets 20 % of requests, v1 the rest (promote with `aidevops promote cli-errs`)"
    )
    out = run(reg, "promote", "cli-errs")
    assert out.stdout.strip() == "promoted v2 of 'cli-errs' to active (v1 kept for rollback)"


def test_dry_run_changes_nothing(reg):
    out = run(reg, "deploy", f"{MODEL}@champion", "--name", "cli-dry", "--dry-run")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("would start 'cli-dry'") and '"version": "1"' in out.stdout
    assert "cli-dry" not in [d.name for d in manager.list_deployments(reg.ws)]


def test_serve_in_the_foreground_reports_a_taken_port(reg):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        out = cli(reg, "serve", f"models:/{MODEL}@champion", "--port", str(port), timeout=60)
    one_sentence_error(out, f"Port {port} on 127.0.0.1 is already in use")


def test_serve_in_the_foreground_answers_both_protocols(reg):
    """`aidevops serve` (what the Kubernetes manifests run) on 127.0.0.1, stopped by SIGTERM like a pod."""
    import time
    import urllib.request

    from aidevops_ext.serving.server import bind_socket

    with bind_socket("127.0.0.1", 0) as probe:
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    env.update(AIDEVOPS_HOME=str(reg.root), MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aidevops_ext.cli",
            "serve",
            f"models:/{MODEL}@champion",
            "--port",
            str(port),
            "--follow-alias",
            "0",
            "--log-level",
            "warning",
        ],
        cwd=reg.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(url + "/v2/health/ready", timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
        body = json.dumps({"inputs": reg.rows[:2]}).encode()
        req = urllib.request.Request(url + "/invocations", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 200 and len(json.loads(r.read())["predictions"]) == 2
        with urllib.request.urlopen(url + f"/v2/models/{MODEL}", timeout=10) as r:
            assert json.loads(r.read())["name"] == MODEL
    finally:
        proc.terminate()
        try:
            # uvicorn shuts down gracefully, then re-raises the signal: -15 is its clean exit on SIGTERM.
            assert proc.wait(20) in (0, -15), "SIGTERM ends the server"
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
