"""Alert state belongs to the version that served, and the automatic retraining holds back where retraining cannot
help: a version awaiting approval, or a version that was already retrained for the same rule."""

from __future__ import annotations

import time
from types import SimpleNamespace

from aidevops_ext import retrainings
from aidevops_ext.deploy.autoretrain import RetrainTrigger
from aidevops_ext.monitoring.alertstore import AlertStore
from aidevops_ext.monitoring.rules import parse_monitor
from aidevops_ext.serving.monitor import LiveMonitor
from aidevops_ext.workspace import Workspace

RULES = {
    "window": 100,
    "min_rows": 50,
    "rules": [
        {"name": "drift", "metric": "psi", "op": ">", "threshold": 0.25, "any_feature": True, "for_windows": 2},
    ],
}


def _monitor(db) -> LiveMonitor:
    server = SimpleNamespace(requestlog=SimpleNamespace(path=db))
    return LiveMonitor(server, config=parse_monitor(RULES), deployment="d")


def _psi(version: str, window: int, value: float) -> dict:
    return {"window": f"{version}:{window}", "psi": {"a": value}}


def test_a_new_version_starts_its_alerts_fresh_and_the_old_firing_one_is_closed(tmp_path):
    db = tmp_path / "deploy.db"
    mon = _monitor(db)
    v1, v2 = SimpleNamespace(name="m", version="1"), SimpleNamespace(name="m", version="2")
    mon._evaluate(_psi("1", 1, 0.5), v1, 1.0)
    mon._evaluate(_psi("1", 2, 0.5), v1, 2.0)
    store = AlertStore(db)
    assert [(s["state"], s["version"]) for s in store.states("d")] == [("firing", "1")]

    # v2 serves: one breaching window is not two, whatever v1 counted.
    mon._evaluate(_psi("2", 1, 0.5), v2, 3.0)
    (state,) = store.states("d")
    assert state["state"] == "ok" and state["version"] == "2"
    closing = store.events("d")[-1]
    assert closing["event"] == "resolved" and "v1 no longer serves" in closing["message"]
    mon._evaluate(_psi("2", 2, 0.5), v2, 4.0)
    assert store.states("d")[0]["state"] == "firing", "v2 fires on two windows of its own traffic"

    # A restarted server resumes its version's state; another version's is not resumed.
    resumed, none_closed = store.state_for_version("d", "2", 5.0)
    assert resumed["drift"]["state"] == "firing" and none_closed == []
    fresh, closed = store.state_for_version("d", "3", 5.0)
    assert fresh == {} and [e["rule"] for e in closed] == ["drift"]


def _retraining(ws: Workspace, status: str, *, version: str, rule: str | None = "drift", switched: bool = False) -> int:
    rid = retrainings.start(
        ws,
        deployment="d",
        model="m",
        trigger="alert" if rule else "manual",
        rule=rule,
        status=retrainings.RUNNING,
        started=time.time(),
    )
    retrainings.update(ws, rid, status=status, version=version, switched_to=version if switched else None)
    return rid


def test_the_automatic_retraining_holds_back_while_a_version_awaits_approval(tmp_path):
    ws = Workspace(tmp_path)
    ws.ensure()
    trigger = RetrainTrigger(ws, "d", cooldown=0)
    event = {"id": 1, "rule": "drift", "version": "1"}
    assert trigger.held_back(event) is None, "nothing retrained yet: an alert retrains"
    rid = _retraining(ws, retrainings.AWAITING, version="2")
    assert "v2 awaits approval" in trigger.held_back(event)
    retrainings.update(ws, rid, status=retrainings.REJECTED)
    assert trigger.held_back(event) is None, "after a decision, alerts retrain again"


def test_a_version_retrained_for_a_rule_is_not_retrained_again_for_that_rule(tmp_path):
    ws = Workspace(tmp_path)
    ws.ensure()
    trigger = RetrainTrigger(ws, "d", cooldown=0)
    _retraining(ws, retrainings.SWITCHED, version="2", switched=True)
    why = trigger.held_back({"id": 5, "rule": "drift", "version": "2"})
    assert "v2 was retrained for drift already" in why and "add data like it" in why
    assert trigger.held_back({"id": 6, "rule": "accuracy", "version": "2"}) is None, "another rule still retrains"
    assert trigger.held_back({"id": 7, "rule": "drift", "version": "3"}) is None, "another version still retrains"
