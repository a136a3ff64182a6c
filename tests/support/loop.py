"""The closed-loop tests' shared steps: the CI pipeline under a name of its own, a deployment undeployed
afterwards, a real Prometheus, and drifted traffic until a retraining ends."""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from aidevops_ext.tokens import require_feedback_token
from aidevops_ext.workspace import Workspace
from tests.support.servers import stop_process

if TYPE_CHECKING:
    from aidevops_ext.retrainings import Retraining
    from aidevops_ext.traffic import ReplayRows, TrafficResult


def ci_pipeline_as(root: Path, name: str, model: str, edit: Callable[[dict], Any] = lambda spec: None) -> None:
    """The project's CI pipeline as `pipelines/NAME.yaml`, with its own model and experiment and a gate that
    tolerates a small drop (a retrained model learns from drifted rows and is judged on the original test split);
    `edit` changes the spec further before it is written."""
    spec = yaml.safe_load((root / "pipelines" / "ci.yaml").read_text())
    spec.update(name=name, model=model, experiment=name)
    spec["gate"]["accuracy"]["min_absolute_change"] = -0.05
    edit(spec)
    (root / "pipelines" / f"{name}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))


def open_loop(spec: dict) -> None:
    """The loop fully open: it trains on the labelled live rows and switches to a version that passes the gate by
    itself (new projects ask first: `promote: manual`, live labels off)."""
    spec.update(promote="auto", retrain={**(spec.get("retrain") or {}), "live_labels": True})


@contextlib.contextmanager
def undeployed_after(aidevops: Callable[..., Any], root: Path) -> Iterator[Path]:
    """Yields `root`; on exit whatever is deployed there is undeployed. `aidevops(root, *args, timeout=...)` is the
    test module's way to run the CLI."""
    try:
        yield root
    finally:
        aidevops(root, "undeploy", "--all", timeout=120)


@contextlib.contextmanager
def champion_deployed(aidevops: Callable[..., Any], root: Path, pipeline: str, model: str, name: str) -> Iterator[Path]:
    """`aidevops run PIPELINE` in `root`, then MODEL's champion deployed as NAME; yields `root`, and on exit
    whatever is deployed there is undeployed."""
    for args in (("run", pipeline), ("deploy", f"{model}@champion", "--name", name)):
        out = aidevops(root, *args)
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    with undeployed_after(aidevops, root):
        yield root


def deployment_status(aidevops: Callable[..., Any], root: Path, name: str) -> dict:
    """What `aidevops deployments NAME --json` says of deployment NAME."""
    out = aidevops(root, "deployments", name, "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    return data[0] if isinstance(data, list) else data


@contextlib.contextmanager
def prometheus(config: Path, port: int, log: Path) -> Iterator[subprocess.Popen]:
    """A real Prometheus reading `config` on 127.0.0.1:PORT, its storage beside the config and its log in `log`,
    stopped on exit (killed if it has not stopped in 15 s)."""
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={config.parent / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=fh,
        )
    try:
        yield proc
    finally:
        stop_process(proc, grace=15)


def drift_until_retrained(
    ws: Workspace, name: str, url: str, rows: ReplayRows
) -> tuple[Retraining | None, TrafficResult, str]:
    """Drifted traffic to deployment NAME at `url` (labels for half the requests, with its feedback token) until a
    retraining of it ends or 420 s pass, then 3 s more: traffic keeps flowing across the switch and after it.
    Returns the retraining that ended (None if none did), what the traffic got, and the deployment log's tail."""
    from aidevops_ext import retrainings, traffic

    token = require_feedback_token(ws, name)
    stop = threading.Event()
    box: dict = {}

    def send() -> None:
        box["result"] = traffic.simulate(
            url, rows, rate=50, duration=600, drift=1.5, feedback=0.5, feedback_token=token, seed=2, stop=stop
        )

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    done = None
    try:
        deadline = time.monotonic() + 420
        while time.monotonic() < deadline and sender.is_alive():
            found = [r for r in retrainings.retrainings(ws, name) if r.status != retrainings.RUNNING]
            if found:
                done = found[0]
                break
            time.sleep(2)
        time.sleep(3)
    finally:
        stop.set()
        sender.join(60)
    log = Path(ws.state / "logs" / f"{name}.log")
    return done, box.get("result"), log.read_text()[-4000:] if log.is_file() else ""


def switched_by_a_drift_retraining(
    ws: Workspace, name: str, url: str, rows: ReplayRows
) -> tuple[Retraining, TrafficResult, dict]:
    """`drift_until_retrained`, then what every closed loop must show: a retraining ended, no request failed and
    every one was drifted, and the chain held: the drift rule's alert started the retraining, whose v2 passed the
    gate and was switched to from v1. Returns the retraining, what the traffic got and the alert's event."""
    from aidevops_ext import retrainings
    from aidevops_ext.monitoring.alertstore import AlertStore

    done, result, tail = drift_until_retrained(ws, name, url, rows)
    assert done is not None, f"no retraining finished; deployment log:\n{tail}"
    assert result.failed == 0, f"{result.failed} requests failed during the loop: {result.errors}"
    assert result.drifted == result.sent, f"{result.sent - result.drifted} of {result.sent} requests not drifted"
    assert done.status == retrainings.SWITCHED, f"{done}\n{tail}"
    assert done.trigger == "alert" and done.rule == "feature-drift" and done.alert_event_id is not None, done
    assert done.from_version == "1" and done.version == "2" and done.switched_to == "2" and done.gate_passed, done
    event = AlertStore(ws.deploy_db).event(done.alert_event_id)
    assert event["event"] == "fired" and event["action"] == "retrain", event
    assert event["handled_by"] == f"retraining #{done.id}", event
    return done, result, event
