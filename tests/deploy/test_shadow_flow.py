"""`aidevops shadow NAME VERSION` on a real supervised deployment: the shadow's evidence reaches
`aidevops monitor` and the Monitor API's answer (agreement, then both accuracies once labels arrive), the
history records who started and stopped it, and a version that is not registered is refused in one sentence."""

from __future__ import annotations

import json
import time

import httpx
import numpy as np

from aidevops_ext.api.models import MonitorSummary
from aidevops_ext.deploy import manager
from aidevops_ext.tokens import require_feedback_token
from tests.deploy.conftest import MODEL, data
from tests.deploy.test_cli import one_sentence_error, run


def _shadow(reg, name: str, requests: int, timeout: float = 30.0) -> dict:
    """The monitor's shadow part once the shadow log holds `requests` requests (or at the timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        shadow = manager.monitor_summary(reg.ws, name, refresh=False)["shadow"]
        if shadow is not None and shadow["requests"] >= requests or time.monotonic() > deadline:
            return shadow
        time.sleep(0.3)


def test_shadow_a_version_then_read_agreement_and_accuracies_from_the_monitor(reg, deployer):
    name = "shadowed"
    dep = deployer(f"{MODEL}/1", name).deployment
    out = run(reg, "shadow", name, "2", "--reason", "before switching")
    assert out.returncode == 0, out.stderr
    assert "v2 shadows v1" in out.stdout
    X, y = data(11, 120)
    X = X.round(3)
    token = require_feedback_token(reg.ws, name)
    with httpx.Client(base_url=dep.url, timeout=30) as c:
        for i in range(0, len(X), 4):
            r = c.post("/invocations", json={"inputs": X[i : i + 4].tolist()})
            assert r.status_code == 200 and r.headers["x-model-version"] == "1"
            labels = [int(v) for v in y[i : i + 4]]
            fb = c.post(
                "/feedback",
                json={"request_id": r.headers["x-request-id"], "labels": labels},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert fb.status_code == 200, fb.text
    shadow = _shadow(reg, name, len(X) // 4)
    assert shadow is not None and shadow["version"] == "2" and shadow["active_version"] == "1"
    assert shadow["running"] and shadow["dropped"] == 0 and shadow["requests"] == len(X) // 4
    assert 0.0 <= shadow["agreement_rate"] < 1.0  # two different fits
    for key in ("active_accuracy", "shadow_accuracy"):
        acc = shadow[key]
        assert acc["labels"] == len(X) and acc["low"] <= acc["value"] <= acc["high"]
    v1 = np.asarray(manager.smoke_protocols(reg.ws, name)["v2_infer"]["outputs"][0]["data"])
    assert v1.size > 0  # the active version still answers; the shadow never did
    summary = MonitorSummary.model_validate(manager.monitor_summary(reg.ws, name, refresh=False))
    assert summary.shadow is not None and summary.shadow.shadow_accuracy.labels == len(X)

    out = run(reg, "monitor", name, "--once", "--json")
    assert json.loads(out.stdout)["shadow"]["version"] == "2"
    text = run(reg, "monitor", name, "--once").stdout
    assert "shadow v2 beside v1" in text and "shadow accuracy" in text and "active accuracy" in text
    out = run(reg, "shadow", name, "--stop")
    assert out.returncode == 0, out.stderr
    after = manager.monitor_summary(reg.ws, name, refresh=False)["shadow"]
    assert after["version"] == "2" and after["running"] is False  # the evidence stays for approval
    # what an approval shows for v2 (loop.awaiting_approval): the same evidence; none for a version never shadowed
    from aidevops_ext.cli_approval import _shadow_line
    from aidevops_ext.deploy.shadow import report

    held = report(reg.ws, name, None, version="2")
    assert held["requests"] == after["requests"] and held["shadow_accuracy"]["labels"] == len(X)
    assert report(reg.ws, name, None, version="1") is None
    (line,) = _shadow_line(held)
    assert line.strip().startswith("shadow    agreement") and f"on {len(X)} labels" in line
    ops = [(h.operation, h.to_version, h.ok) for h in manager.history(reg.ws, name)]
    assert ("shadow", "2", True) in ops and ("shadow_stop", "2", True) in ops


def test_shadowing_a_version_that_is_not_registered_is_one_sentence(reg, deployer):
    deployer(f"{MODEL}/1", "shadow-missing")
    one_sentence_error(run(reg, "shadow", "shadow-missing", "99"), "no version 99")
    one_sentence_error(run(reg, "shadow", "shadow-missing", "--stop"), "no shadow")


def test_a_server_restarted_by_its_supervisor_loads_its_shadow_again(reg, deployer):
    import os
    import signal

    from aidevops_ext.deploy import shadow

    name = "shadow-restart"
    deployer(f"{MODEL}/1", name)
    shadow.start(reg.ws, name, "2", reason="restart test")
    killed = manager.get(reg.ws, name).server_pid
    os.kill(killed, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while True:
        status = manager.status(reg.ws, name)
        restarted = status.slots is not None and status.deployment.server_pid not in (None, killed)
        if restarted and (status.slots.get("shadow") or {}).get("version") == "2" or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert restarted and status.slots["shadow"]["version"] == "2" and status.slots["active"]["version"] == "1"
    shadow.stop(reg.ws, name)
    assert "shadow_version" not in json.loads(manager.get(reg.ws, name).options)
