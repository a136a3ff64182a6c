"""The Monitor and Runs panels' REST API against a real Jupyter server: a real deployment with real traffic, the
series and alerts read back, background runs followed through /jobs, and nbdime's diff of two runs."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import httpx
import nbdime
import pytest

from aidevops_ext import traffic
from aidevops_ext.tokens import require_feedback_token
from aidevops_ext.workspace import Workspace

from .conftest import MODEL

DEPLOYMENT = "api-monitor"


def _error(response: httpx.Response, status: int = 400) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"].endswith((".", ")")), body
    return body["error"]


def _until(fetch, ok, timeout=90.0, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if ok(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached in {timeout} s; last: {str(value)[:2000]}")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def sent(client, lab):
    """A deployment of the champion and 4 s of traffic at 150 requests/s, half of it labelled."""
    answer = client.post("deployments", json={"model": MODEL, "alias": "champion", "name": DEPLOYMENT})
    assert answer.status_code == 201, answer.text
    url = answer.json()["deployment"]["url"]
    token = require_feedback_token(Workspace(lab.root), DEPLOYMENT)
    rows = traffic.rows_for_model(lab.root, MODEL)
    result = traffic.simulate(url, rows, rate=150, duration=4, feedback=0.5, feedback_token=token)
    assert result.ok > 300 and result.failed == 0, result.errors
    yield result
    client.delete(f"deployments/{DEPLOYMENT}")


def test_series_count_every_request_and_chart_quality_and_predictions(client, lab, sent):
    def fetch():
        return client.get(f"deployments/{DEPLOYMENT}/series", params={"minutes": 10, "buckets": 30}).json()

    series = _until(fetch, lambda s: sum(s["requests"]["requests"]) >= sent.sent, what="every request logged")
    req = series["requests"]
    # the log itself, deploy checks included; this deployment's rows only (other lab modules deploy the same model)
    with sqlite3.connect(lab.root / ".aidevops" / "deploy.db") as db:
        logged = db.execute(
            "SELECT count(*) FROM request_log WHERE deployment = ? AND ts >= ?", (DEPLOYMENT, series["start"])
        ).fetchone()[0]
    assert sum(req["requests"]) == logged >= sent.sent and len(req["t"]) == 30
    assert series["model"] == MODEL and series["task"] == "classification"
    busy = [i for i, n in enumerate(req["requests"]) if n]
    assert busy and all(req["p50_ms"][i] <= req["p95_ms"][i] <= req["p99_ms"][i] for i in busy)
    assert all(req["p50_ms"][i] is None and req["rate"][i] == 0 for i in range(30) if i not in busy)
    assert max(req["rate"]) > 10, "requests per second, not per bucket"
    pred = series["predictions"]
    assert pred["task"] == "classification" and len(pred["classes"]) == 10 and pred["n"] > 0
    assert abs(sum(pred["live"]) + pred["unseen"] - 1) < 1e-9 and abs(sum(pred["reference"]) - 1) < 1e-9
    labelled = [q for q in series["quality"] if q.get("accuracy") is not None]
    assert labelled, series["quality"][-3:]
    last = labelled[-1]
    assert 0.5 < last["accuracy"] <= 1 and last["accuracy_lower"] <= last["accuracy"] <= last["accuracy_upper"]


def test_the_monitor_summary_and_alerts_describe_the_live_window(client, sent):
    summary = _until(
        lambda: client.get(f"deployments/{DEPLOYMENT}/monitor", params={"refresh": "1"}).json(),
        lambda s: s.get("logged_rows", 0) >= 300,
        what="a full window",
    )
    assert summary["model"] == MODEL and summary["status"] == "ok"
    assert summary["drift"]["status"] == "ok" and len(summary["drift"]["features"]) == 64
    # In-distribution traffic: a replay of the fixed test split (a hash sample whose class mix is its own) may show
    # a moderate fluctuation on a few of the 64 pixels, never a feature in the major PSI band or a firing alert.
    drift = summary["drift"]
    assert all((f["psi"] or 0) < 0.25 for f in drift["features"]), "in-distribution traffic"
    assert len(drift["drifted"]) <= 3, drift["drifted"]
    assert {a["rule"] for a in summary["alerts"]} == {"feature-drift", "accuracy-low", "errors"}
    assert all(a["state"] == "ok" for a in summary["alerts"])
    cheap = client.get(f"deployments/{DEPLOYMENT}/monitor").json()  # what the panel polls: the latest pass
    assert cheap["at"] >= summary["at"] and cheap["version"] == summary["version"]
    alerts = client.get(f"deployments/{DEPLOYMENT}/alerts").json()
    assert [a["rule"] for a in alerts["alerts"]] == ["feature-drift", "accuracy-low", "errors"]
    assert alerts["alerts"][0]["threshold"] == 0.25 and alerts["alerts"][0]["action"] == "retrain"
    assert isinstance(alerts["events"], list)


@pytest.mark.parametrize(
    ("method", "path", "body", "needle"),
    [
        ("GET", f"deployments/{DEPLOYMENT}/series?minutes=0", None, "minutes must be a number from 1"),
        ("GET", f"deployments/{DEPLOYMENT}/series?minutes=lots", None, "'minutes' must be a number"),
        ("GET", f"deployments/{DEPLOYMENT}/series?buckets=5000", None, "buckets must be a whole number from 1 to 1000"),
        ("GET", "deployments/ghost/monitor", None, "ghost"),
        ("GET", "deployments/ghost/series", None, "ghost"),
        ("GET", "deployments/ghost/alerts", None, "ghost"),
        ("POST", "deployments/ghost/retrain", {}, "ghost"),
        ("POST", f"deployments/{DEPLOYMENT}/retrain", {"rows": 5}, "Unknown field(s) rows"),
        ("POST", "runs", {}, "Field 'pipeline' is missing"),
        ("POST", "runs", {"pipeline": "nope"}, "pipeline spec 'nope' not found"),
        ("POST", "runs", {"pipeline": "../../etc/passwd"}, "which is not the name of a pipeline"),
        ("POST", "runs", {"pipeline": "ci", "params": {"epochz": 3}}, "unknown parameter 'epochz'"),
        ("POST", "runs", {"pipeline": "ci", "params": {"epochs": "many"}}, "expects an integer"),
        ("POST", "runs", {"pipeline": "ci", "params": [1, 2]}, "must be a JSON object of param names"),
        ("POST", "runs", {"pipeline": "ci", "force": True}, "Unknown field(s) force"),
        ("POST", "runs/nope/rerun", {}, "no pipeline run 'nope'"),
        ("GET", "jobs/nope", None, "there is no job 'nope'"),
        ("GET", "jobs/..%2F..%2Fetc", None, "is not valid"),
        ("GET", "diff?base=nope&remote=nope", None, "no pipeline run 'nope' (base)"),
        ("GET", "diff", None, "no pipeline run ''"),
    ],
)
def test_bad_requests_are_4xx_sentences_and_start_nothing(client, sent, method, path, body, needle):
    before = client.get("jobs").json()["jobs"]
    missing = needle == "ghost" or needle.startswith(("no pipeline run", "there is no job"))  # 404: no such thing
    message = _error(client.request(method, path, json=body), 404 if missing else 400)
    assert needle in message, message
    assert client.get("jobs").json()["jobs"] == before


def test_the_monitor_of_a_stopped_deployment_is_409_while_its_alerts_stay_readable(client, sent):
    name = "api-monitor-stopped"
    assert client.post("deployments", json={"model": MODEL, "version": "1", "name": name}).status_code == 201
    assert client.delete(f"deployments/{name}").status_code == 200
    assert "not running" in _error(client.get(f"deployments/{name}/monitor"), 409)
    assert [a["state"] for a in client.get(f"deployments/{name}/alerts").json()["alerts"]] == ["ok", "ok", "ok"]


def test_a_run_started_through_the_api_is_followed_to_its_end_and_rerun_from_its_failed_step(client, seeded):
    def follow(job_id):
        return _until(
            lambda: client.get(f"jobs/{job_id}").json(),
            lambda j: j["status"] != "running",
            timeout=300,
            what=f"job {job_id} ends",
        )

    started = client.post("runs", json={"pipeline": "ci", "params": {"epochs": 0, "hidden": [12]}})
    assert started.status_code == 202, started.text
    failed = follow(started.json()["job"]["id"])
    assert failed["status"] == "failed" and failed["exit_code"] == 1 and failed["log_tail"]
    run = failed["run"]
    assert run["status"] == "failed" and run["overrides"] == {"epochs": 0, "hidden": [12]}
    assert run["steps"]["train"]["status"] == "failed" and "epochs" in run["steps"]["train"]["error"]
    assert run["steps"]["prepare"]["status"] in ("ran", "cached") and run["steps"]["register"]["status"] == "pending"

    again = client.post(f"runs/{run['run_id']}/rerun", json={"params": {"epochs": 1, "hidden": [12]}})
    assert again.status_code == 202, again.text
    assert again.json()["job"]["argv"] == ["run", "ci", "-p", "epochs=1", "-p", "hidden=[12]"]
    done = follow(again.json()["job"]["id"])
    assert done["status"] == "succeeded", done["log_tail"]
    steps = done["run"]["steps"]
    assert done["run"]["resumed_from"] == run["run_id"]
    assert steps["prepare"]["status"] == "cached" and steps["prepare"]["cache"] == "hit"
    assert steps["train"]["status"] == "ran" and steps["train"]["params"]["epochs"] == 1
    listed = client.get("jobs").json()["jobs"]
    assert [j["id"] for j in listed[:2]] == [done["id"], failed["id"]]


def test_two_runs_diff_in_nbdime(client, lab, seeded):
    answer = client.get("diff", params={"base": seeded.runs[0], "remote": seeded.runs[1], "step": "train"})
    assert answer.status_code == 200, answer.text
    diff = answer.json()
    assert diff["steps"][:4] == ["prepare", "train", "evaluate", "register"] and diff["step"] == "train"
    assert diff["params"]["seed"] == [0, 1]
    # nbdime gets the two notebooks with run ids, folders and timings masked, written under .aidevops/diffs/
    assert diff["base_path"] == f".aidevops/diffs/{seeded.runs[0]}--{seeded.runs[1]}--train/base-02_train.ipynb"
    assert "unknown step" not in diff and diff["url"].startswith("nbdime/difftool?base=")
    assert "choose one of prepare, train" in _error(
        client.get("diff", params={"base": seeded.runs[0], "remote": seeded.runs[1], "step": "nope"})
    )
    with httpx.Client(base_url=lab.url, headers={"Authorization": f"token {lab.token}"}, timeout=60) as raw:
        page = raw.get("/" + diff["url"])
        assert page.status_code == 200 and "nbdime" in page.text
        chunk = next((Path(nbdime.__file__).parent / "webapp" / "static").glob("*.nbdime.js")).name
        assert raw.get(f"/nbdime/static/{chunk}").status_code == 200, "the page's lazily loaded chunks are served"
        assert raw.get("/nbdime/static/../../../etc/passwd").status_code in (403, 404)
        nbdiff = raw.post("/nbdime/api/diff", json={"base": diff["base_path"], "remote": diff["remote_path"]})
        assert nbdiff.status_code == 200, nbdiff.text
        body = nbdiff.json()
        assert body["base"]["cells"] and body["diff"], "the two runs' executed notebooks differ (seed, outputs)"
