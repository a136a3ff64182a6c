"""`promote: manual` and the live-labels opt-in, all real: the CI pipeline registers a champion, it is deployed, and
drifted traffic with labels is logged. Then, with `aidevops retrain`:
- live labels off: the retraining uses no live row (no handover file, no `extra_data` override) and, nothing
  having changed, leaves the deployment as it is;
- live labels on with a small share: the live rows in the training data are capped at that share (more were
  handed over), the gate passes, and the version waits as `challenger` (champion unchanged, the deployment still
  on v1) with its evidence in `aidevops deployments NAME`;
- `aidevops approve` switches to it and moves champion; a later held version is dropped by `aidevops reject`;
  both are in the deployment's history with their reason and who.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.support.cli import loop_settings, run_cli
from tests.support.loop import champion_deployed, ci_pipeline_as
from tests.support.projects import copy_project

PIPELINE = "held"
MODEL = "held-digits"
NAME = "held"


def aidevops(root: Path, *args: str, timeout: int = 400) -> subprocess.CompletedProcess:
    return run_cli(*args, cwd=root, env=loop_settings(AIDEVOPS_HOME=str(root)), timeout=timeout)


def ok(out: subprocess.CompletedProcess) -> str:
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    return out.stdout


def set_spec(root: Path, **changes) -> None:
    path = root / "pipelines" / f"{PIPELINE}.yaml"
    spec = yaml.safe_load(path.read_text())
    spec.update(changes)
    path.write_text(yaml.safe_dump(spec, sort_keys=False))


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    """The CI pipeline as `held.yaml` (its own model; a gate that tolerates a small drop: a retrained model learns
    from drifted rows and is judged on the original test split), run once, its champion deployed as `held`."""

    def no_rule_retrains(spec: dict) -> None:  # the retrainings here are the test's own, by `aidevops retrain`
        for rule in spec["monitor"]["rules"]:
            rule.pop("action", None)

    root = copy_project(tmp_path_factory.mktemp("held"))
    ci_pipeline_as(root, PIPELINE, MODEL, edit=no_rule_retrains)
    with champion_deployed(aidevops, root, PIPELINE, MODEL, NAME):
        yield root


def send(root: Path, seconds: int, seed: int) -> None:
    out = ok(
        aidevops(
            root,
            "simulate",
            NAME,
            "--rate",
            "100",
            "--duration",
            str(seconds),
            "--drift",
            "1.5",
            "--feedback",
            "1.0",
            "--seed",
            str(seed),
        )
    )
    assert " 0 failed" in out, out


def retrain(root: Path) -> dict:
    return json.loads(ok(aidevops(root, "retrain", NAME, "--json")))


def status(root: Path) -> dict:
    return json.loads(ok(aidevops(root, "deployments", NAME, "--json")))


def aliases(root: Path) -> dict:
    models = {m["name"]: m for m in json.loads(ok(aidevops(root, "models", "--json")))}
    return models[MODEL]["aliases"]


def version_tags(root: Path, version: str) -> dict:
    versions = json.loads(ok(aidevops(root, "models", MODEL, "--json")))[0]["versions"]
    return next(v for v in versions if v["version"] == version).get("tags") or {}


def run_record(root: Path, run_id: str) -> dict:
    return json.loads(ok(aidevops(root, "show", run_id, "--json")))


def test_with_live_labels_off_a_retraining_uses_no_live_row(deployed):
    root = deployed
    send(root, 4, seed=3)
    done = retrain(root)
    assert done["live_rows"] == 0 and done["extra_data"] is None, done
    assert "extra_data" not in run_record(root, done["pipeline_run_id"])["overrides"]
    assert done["status"] == "unchanged" and status(root)["active_version"] == "1", done
    assert status(root)["awaiting_approval"] is None


def test_with_live_labels_on_the_share_is_capped_and_the_version_awaits_approval(deployed):
    root = deployed
    set_spec(root, retrain={"live_labels": True, "max_live_share": 0.05, "min_live_rows": 10})
    done = retrain(root)
    with np.load(done["extra_data"]) as handover:
        handed = len(handover["y"])
    assert done["status"] == "awaiting approval" and done["version"] == "2" and done["gate_passed"], done
    assert handed > done["live_rows"] > 0, "more labelled rows were handed over than the cap let in"
    assert done["live_rows"] <= 0.05 * done["training_rows"], done
    dataset = json.loads(
        Path(run_record(root, done["pipeline_run_id"])["run_dir"], "prepare", "dataset.json").read_text()
    )
    assert dataset["n_live"] == done["live_rows"]

    now = status(root)
    assert now["active_version"] == "1", "a held version does not serve"
    held = now["awaiting_approval"]
    assert held["version"] == "2" and held["retraining"] == done["id"] and held["live_rows"] == done["live_rows"]
    assert held["gate"]["passed"] is True and held["gate"]["summary"].startswith("Gate passed")
    assert held["live_since"] and held["trigger"].startswith("retrained by hand")
    assert aliases(root) == {"champion": "1", "challenger": "2"}
    assert version_tags(root, "2")["aidevops.awaiting_approval"] == "true"
    listing = ok(aidevops(root, "deployments", NAME))
    assert "awaiting  v2" in listing and f"aidevops approve {NAME}" in listing
    assert f"{NAME}: v2 awaits approval" in ok(aidevops(root, "deployments"))


def test_approve_switches_and_moves_champion_and_reject_drops_the_next_one(deployed):
    root = deployed
    out = ok(aidevops(root, "approve", NAME, "--reason", "checked the drifted rows by hand"))
    assert "switched to v2" in out
    now = status(root)
    assert now["active_version"] == "2" and now["awaiting_approval"] is None
    assert aliases(root)["champion"] == "2"
    tags = version_tags(root, "2")
    assert tags["aidevops.approval"].startswith("approved by") and "aidevops.awaiting_approval" not in tags
    approved = next(h for h in now["history"] if h["operation"] == "approve")
    assert approved["to_version"] == "2" and "checked the drifted rows by hand" in approved["reason"]
    assert approved["actor"]
    chain = json.loads(ok(aidevops(root, "retrains", NAME, "--json")))
    assert chain[-1]["status"] == "switched" and chain[-1]["switched_to"] == "2"

    send(root, 4, seed=5)
    held = retrain(root)
    assert held["status"] == "awaiting approval" and held["version"] == "3", held
    out = ok(aidevops(root, "reject", NAME, "--reason", "not this one"))
    assert "rejected v3" in out
    now = status(root)
    assert now["active_version"] == "2" and now["awaiting_approval"] is None
    assert aliases(root) == {"champion": "2"}, "the rejected version loses challenger; champion stays"
    assert version_tags(root, "3")["aidevops.approval"].startswith("rejected by")
    rejected = next(h for h in now["history"] if h["operation"] == "reject")
    assert rejected["to_version"] == "3" and "not this one" in rejected["reason"]
    assert json.loads(ok(aidevops(root, "retrains", NAME, "--json")))[-1]["status"] == "rejected"
    refused = aidevops(root, "approve", NAME)
    assert refused.returncode != 0 and "awaits approval" in refused.stderr
