"""The closed loop end to end, all real: a pipeline registers a champion, it is deployed (supervised server on
127.0.0.1), a real Prometheus scrapes it, drifted traffic with feedback makes the drift rule fire, the
supervisor starts a retraining on the logged rows, the gate passes, the deployment switches — and not one
request fails while all of that happens.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from aidevops_ext.tokens import require_feedback_token
from aidevops_ext.workspace import Workspace
from tests.support.cli import loop_settings, run_cli
from tests.support.loop import (
    champion_deployed,
    ci_pipeline_as,
    deployment_status,
    open_loop,
    prometheus,
    switched_by_a_drift_retraining,
)
from tests.support.projects import copy_project
from tests.support.servers import free_port

PIPELINE = "loop"
MODEL = "loop-digits"
NAME = "loop"


def aidevops(root: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return run_cli(*args, cwd=root, env=loop_settings(AIDEVOPS_HOME=str(root)), timeout=timeout)


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    """The CI pipeline as `loop.yaml` (its own model; a gate that tolerates a small drop, since the retrained
    model is judged on the original test split), run once, its champion deployed as `loop`."""
    root = copy_project(tmp_path_factory.mktemp("loop"))
    ci_pipeline_as(root, PIPELINE, MODEL, edit=open_loop)
    with champion_deployed(aidevops, root, PIPELINE, MODEL, NAME):
        yield root


def deployment(root: Path) -> dict:
    return deployment_status(aidevops, root, NAME)


def _url(root: Path) -> str:
    dep = deployment(root)
    return dep.get("url") or dep["deployment"]["url"]


def test_a_real_prometheus_scrapes_drift_and_latency_series(deployed, tmp_path):
    from aidevops_ext import traffic

    url = _url(deployed)
    target = urllib.parse.urlsplit(url).netloc
    port = free_port()
    (tmp_path / "prometheus.yml").write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [{"job_name": "aidevops", "static_configs": [{"targets": [target]}]}],
            }
        )
    )
    with prometheus(tmp_path / "prometheus.yml", port, tmp_path / "prometheus.log"):
        rows = traffic.rows_for_model(deployed, MODEL)
        token = require_feedback_token(Workspace(deployed), NAME)  # labels need the deployment's token
        sent = traffic.simulate(url, rows, rate=100, duration=2.5, feedback=1.0, feedback_token=token, seed=1)
        assert sent.failed == 0 and sent.ok >= 240, sent.errors

        def query(q: str) -> list:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{port}/api/v1/query?query={urllib.parse.quote(q)}", timeout=5
            ) as r:
                body = json.loads(r.read())
            assert body["status"] == "success", body
            return body["data"]["result"]

        deadline = time.monotonic() + 60
        psi = latency = accuracy = []
        while time.monotonic() < deadline:
            try:
                psi = query(f'aidevops_drift_psi{{model="{MODEL}"}}')
                latency = query(f'aidevops_request_latency_seconds_count{{model="{MODEL}",protocol="mlflow"}}')
                accuracy = query(f'aidevops_live_accuracy{{model="{MODEL}"}}')
            except OSError:
                pass  # Prometheus still starting
            if len(psi) == 64 and latency and accuracy:
                break
            time.sleep(1)
        assert len(psi) == 64, (
            f"one PSI series per digits pixel, got {len(psi)}: {(tmp_path / 'prometheus.log').read_text()[-2000:]}"
        )
        assert {s["metric"]["version"] for s in psi} == {"1"}
        assert max(float(s["value"][1]) for s in psi) < 0.25, "in-distribution traffic shows no major drift"
        assert float(latency[0]["value"][1]) >= sent.ok
        assert 0.8 < float(accuracy[0]["value"][1]) <= 1.0


def test_drift_alert_retrains_and_switches_with_zero_failed_requests(deployed):
    from aidevops_ext import traffic
    from aidevops_ext.workspace import Workspace

    ws = Workspace(deployed)
    rows = traffic.rows_for_model(deployed, MODEL)
    # The chain: alert -> retraining -> pipeline run -> version -> deployment change.
    done, result, event = switched_by_a_drift_retraining(ws, NAME, _url(deployed), rows)
    assert result.ok > 500
    assert done.live_rows and done.live_rows > 0
    assert event["version"] == "1"
    run = json.loads(aidevops(deployed, "show", done.pipeline_run_id, "--json").stdout)
    assert run["status"] == "succeeded" and run["overrides"]["extra_data"] == done.extra_data
    assert run["steps"]["prepare"]["status"] == "ran", "the live rows changed the training data"
    assert set(result.versions) == {"1", "2"}, "answers came from the old version, then the new one"
    dep = deployment(deployed)
    assert (dep.get("active_version") or dep["deployment"]["active_version"]) == "2"
    history = json.loads(aidevops(deployed, "deployments", NAME, "--history", "--json").stdout)
    entries = history.get("history", history) if isinstance(history, dict) else history
    assert any(h.get("to_version") == "2" and f"retraining #{done.id}" in h.get("reason", "") for h in entries), entries

    models = {m["name"]: m for m in json.loads(aidevops(deployed, "models", "--json").stdout)}
    versions = {v["version"]: v for v in models[MODEL]["versions"]}
    assert "champion" in versions["2"]["aliases"]

    chain = json.loads(aidevops(deployed, "retrains", NAME, "--json").stdout)
    assert chain[-1]["id"] == done.id and chain[-1]["pipeline_run_id"] == done.pipeline_run_id
    snap = aidevops(deployed, "monitor", NAME, "--once", "--json")
    assert snap.returncode == 0, snap.stderr
    summary = json.loads(snap.stdout)
    assert summary["version"] == "2" and any(e["id"] == done.alert_event_id for e in summary["events"])
