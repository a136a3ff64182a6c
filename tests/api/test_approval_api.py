"""`promote: manual` through the REST API, in process: a deployment shows the retrained version that awaits
approval with its evidence, reject drops it with the reason in the history, approve with nothing awaiting (or a
deployment that is not running) is a one-sentence 409 that changes nothing."""

from __future__ import annotations

import time

from aidevops_ext import loop, retrainings
from aidevops_ext.deploy.store import STOPPED, Deployment, DeployStore
from aidevops_ext.workspace import Workspace
from tests.api.test_handlers import _call


def _held(root) -> tuple[Workspace, int]:
    """A stopped deployment 'd' of model 'm' whose retraining #N left v2 awaiting approval."""
    ws = Workspace(root)
    ws.ensure()
    now = time.time()
    DeployStore(ws).put(Deployment(name="d", model="m", ref="m@champion", state=STOPPED, created=now, updated=now))
    rid = retrainings.start(
        ws, deployment="d", model="m", trigger="alert", rule="feature-drift", status=retrainings.RUNNING, started=now
    )
    registration = {"gate_passed": True, "reasons": ["accuracy 0.97 >= 0.93"], "compared_on": "the same 359 rows"}
    loop._write_evidence(ws, rid, registration, None, "someone", 120, now - 600)
    retrainings.update(ws, rid, status=retrainings.AWAITING, version="2", from_version="1", gate_passed=1, finished=now)
    return ws, rid


async def test_a_held_version_shows_its_evidence_and_reject_drops_it_into_the_history(jp_fetch, workspace):
    ws, rid = _held(workspace)
    status, dep = await _call(jp_fetch, "deployments/d")
    assert status == 200, dep
    held = dep["awaiting_approval"]
    assert held["version"] == "2" and held["from_version"] == "1" and held["retraining"] == rid
    assert held["gate"]["passed"] is True and held["gate"]["summary"] == "Gate passed: accuracy 0.97 >= 0.93"
    assert held["live_rows"] == 120 and held["live_since"].endswith("+00:00") and held["since"]
    assert held["trigger"] == "retrained by hand by someone"

    status, answer = await _call(jp_fetch, "deployments/d/reject", "POST", {"reason": "drifted rows look forged"})
    assert status == 200, answer
    event = answer["event"]
    assert event["operation"] == "reject" and event["to_version"] == "2"
    assert "drifted rows look forged" in event["reason"] and event["actor"].endswith("via JupyterLab")
    assert answer["deployment"]["awaiting_approval"] is None
    assert answer["deployment"]["history"][0]["operation"] == "reject", "the history, newest first, has it"
    (done,) = retrainings.retrainings(ws, "d")
    assert done.status == retrainings.REJECTED and "drifted rows look forged" in done.message


async def test_approve_with_nothing_held_or_a_stopped_deployment_is_a_409_that_changes_nothing(jp_fetch, workspace):
    ws = Workspace(workspace)
    ws.ensure()
    now = time.time()
    DeployStore(ws).put(Deployment(name="d", model="m", ref="m@champion", state=STOPPED, created=now, updated=now))
    for verb in ("approve", "reject"):
        status, answer = await _call(jp_fetch, f"deployments/d/{verb}", "POST", {"reason": "x"})
        assert status == 409 and "No retrained version of 'd' awaits approval" in answer["error"], answer
    assert (await _call(jp_fetch, "deployments/nope/approve", "POST"))[0] == 404

    _, rid = _held(workspace)
    status, answer = await _call(jp_fetch, "deployments/d/approve", "POST", {"reason": "looks good"})
    assert status == 409 and "is stopped, not running" in answer["error"], answer
    assert loop.awaiting(ws, "d").id == rid, "a refused approval leaves the version awaiting"
    assert all(h.operation != "approve" for h in DeployStore(ws).history("d", 10))
    status, answer = await _call(jp_fetch, "deployments/d/approve", "POST", {"reason": "x" * 501})
    assert status == 400 and "at most 500 characters" in answer["error"]
