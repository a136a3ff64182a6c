"""The closed loop converges on the repository's default pipeline, all real: the main job (`aidevops run`: train,
gate, register, deploy, then the monitor step's in-distribution and drifted segments), the rest of that drifted
segment until the drift rule fires and the supervisor retrains and switches, then in-distribution traffic for
several windows: no drift alert fires on the retrained version and nothing retrains again. Traffic like the
drifted segment then fires on the retrained version, and the alert starts no second retraining, for the reason
the README's convergence rule gives (v2 was retrained for that rule already).

The loop runs fully open here (`retrain: {live_labels: true}`, `promote: auto`): the case the issue measured,
where the monitor step's shifted rows joined the training data. As shipped (live labels off, `promote: manual`)
those rows do not reach a model at all.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.support.cli import loop_settings, run_cli
from tests.support.loop import undeployed_after
from tests.support.polling import poll
from tests.support.projects import copy_project

NAME = MODEL = "digits-classifier"


def aidevops(root: Path, *args: str, timeout: int = 400) -> subprocess.CompletedProcess:
    # nothing but the convergence rule may hold a second retraining back: no cooldown
    settings = loop_settings(AIDEVOPS_HOME=str(root), AIDEVOPS_RETRAIN_COOLDOWN="0")
    return run_cli(*args, cwd=root, env=settings, timeout=timeout)


@pytest.fixture(scope="module")
def main_job(tmp_path_factory):
    root = copy_project(tmp_path_factory.mktemp("converge"))
    path = root / "pipelines" / "default.yaml"
    spec = yaml.safe_load(path.read_text())
    spec.update(promote="auto", retrain={"live_labels": True, "max_live_share": 0.3, "min_live_rows": 50})
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    out = aidevops(root, "run")
    assert out.returncode == 0, out.stderr[-3000:]
    with undeployed_after(aidevops, root):
        yield root


def _summary(root: Path) -> dict:
    out = aidevops(root, "monitor", NAME, "--once", "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _drift_state(summary: dict) -> str:
    return next(a["state"] for a in summary["alerts"] if a["rule"] == "feature-drift")


def _retrainings(root: Path) -> list[dict]:
    return json.loads(aidevops(root, "retrains", NAME, "--json").stdout)


def _send(root: Path, seconds: float, *, drift: float = 0.0) -> None:
    """`aidevops simulate` (the test split replayed, labels posted with the deployment's token), then a moment for
    the request log's writer and a monitor pass (every second here) to catch up."""
    args = ["--drift", str(drift)] if drift else []
    out = aidevops(root, "simulate", NAME, "--rate", "100", "--duration", str(seconds), "--feedback", "0.3", *args)
    assert out.returncode == 0 and " 0 failed" in out.stdout, out.stdout + out.stderr[-2000:]
    time.sleep(2.5)


def test_in_distribution_traffic_after_the_retraining_fires_nothing_and_retrains_nothing(main_job):
    root = main_job
    if not _retrainings(root):  # the monitor step's drifted segment may end before the rule's second window
        _send(root, 12, drift=1.5)
    first = poll(
        lambda: [r for r in _retrainings(root) if r["status"] != "running"],
        seconds=240,
        what="the retraining the drift alert started",
        interval=2,
    )
    (done,) = first
    log = (root / ".aidevops" / "logs" / f"{NAME}.log").read_text()[-3000:]
    assert done["status"] == "switched" and done["rule"] == "feature-drift", f"{done}\n{log}"
    assert done["live_rows"] > 0 and done["live_rows"] <= 0.3 * done["training_rows"] + 1, done
    assert _summary(root)["version"] == "2"

    # Several windows of traffic like the data the pipeline describes: v2 is judged against that data.
    _send(root, 25)
    summary = _summary(root)
    assert summary["version"] == "2" and summary["completed_windows"] >= 4, summary.get("completed_windows")
    assert _drift_state(summary) != "firing", summary["drift"]["drifted"]
    assert max(f["psi"] for f in summary["drift"]["features"]) < 0.25
    fired_on_v2 = [
        e for e in summary["events"] if e["rule"] == "feature-drift" and e["event"] == "fired" and e["version"] == "2"
    ]
    assert fired_on_v2 == [] and len(_retrainings(root)) == 1, "no second retraining"
    closed = [e for e in summary["events"] if e["event"] == "resolved" and "v1 no longer serves" in e["message"]]
    assert closed, "v1's firing drift alert was closed when v2 took over, not carried over to v2"


def test_traffic_like_the_drifted_segment_fires_on_v2_but_retrains_nothing_by_the_stated_rule(main_job):
    root = main_job
    _send(root, 14, drift=1.5)

    def fired():
        return [
            e
            for e in _summary(root)["events"]
            if e["rule"] == "feature-drift" and e["event"] == "fired" and e["version"] == "2" and e["handled_by"]
        ]

    (event,) = poll(fired, seconds=60, what="the drift alert on v2 and its handling", interval=2)
    assert event["handled_by"].startswith("skipped: v2 was retrained for feature-drift already"), event
    assert len(_retrainings(root)) == 1 and _summary(root)["version"] == "2"
