"""The server's live monitor: drift and live accuracy from the request log, gauges on /metrics, alert state in deploy.db."""

from __future__ import annotations

import numpy as np
import pytest
from starlette.testclient import TestClient

from aidevops_ext.monitoring.alertstore import AlertStore
from aidevops_ext.monitoring.rules import parse_monitor
from tests.serving.conftest import FEATURE_DRIFT_RETRAINS, FEEDBACK_AUTH, data, monitor_pass
from tests.support.imports import modules_loaded_by

MONITOR = parse_monitor(
    {
        "window": 300,
        "min_rows": 200,
        "min_labels": 50,
        "rules": [
            FEATURE_DRIFT_RETRAINS,
            {"name": "accuracy-low", "metric": "accuracy_upper", "op": "<", "threshold": 0.5},
        ],
    }
)


def _send(c: TestClient, X: np.ndarray, labels=None, prefix: str = "r") -> None:
    for i in range(0, len(X), 10):  # ten rows a request: windows span many requests
        r = c.post("/invocations", json={"inputs": X[i : i + 10].tolist()})
        assert r.status_code == 200, r.text
        if labels is not None:
            rid = r.headers["x-request-id"]  # the server's id: feedback names it
            fb = c.post(
                "/feedback",
                json={"request_id": rid, "labels": [int(v) for v in labels[i : i + 10]]},
                headers=FEEDBACK_AUTH,
            )
            assert fb.status_code == 200, fb.text


@pytest.fixture
def monitored(app_factory, tmp_path):
    db = tmp_path / "deploy.db"
    app = app_factory(db=db, monitor=MONITOR, deployment="abc-live", monitor_seconds=0)
    with TestClient(app) as c:
        yield app, c, db


def test_in_distribution_traffic_is_not_flagged_and_accuracy_is_measured(monitored):
    app, c, db = monitored
    X, y = data(seed=11, n=300)
    _send(c, X, labels=y)
    s = monitor_pass(app)
    assert s["window"] == "1:1" and s["logged_rows"] == 300
    assert s["drift"]["status"] == "ok" and s["drift"]["drifted"] == []
    q = s["quality"]
    assert q["labelled"] == 300 and q["status"] == "ok"
    truth = float((app.state.server.slots.active.predict(X) == y).mean())
    assert q["accuracy"] == pytest.approx(truth) and q["accuracy_lower"] < truth < q["accuracy_upper"]
    assert {a["rule"]: a["state"] for a in s["alerts"]} == {"feature-drift": "ok", "accuracy-low": "ok"}
    metrics = c.get("/metrics").text
    assert 'aidevops_drift_psi{feature="a",model="abc",version="1"}' in metrics
    assert f'aidevops_live_accuracy{{model="abc",version="1"}} {truth}' in metrics
    assert 'aidevops_alert_firing{model="abc",rule="feature-drift",version="1"} 0.0' in metrics
    assert c.get("/monitor").json()["window"] == "1:1"


def test_shifted_feature_fires_after_two_windows_then_resolves(monitored):
    app, c, db = monitored
    X, _ = data(seed=12, n=900)
    shifted = X.copy()
    shifted[:, 1] += 2 * 2.0  # two reference stds on b only
    _send(c, shifted[:300], prefix="a")
    first = monitor_pass(app)
    assert first["drift"]["drifted"] == ["b"], first["drift"]["drifted"]
    assert first["alerts"][0]["state"] == "ok", "one breaching window is not two"
    assert monitor_pass(app)["alerts"][0]["state"] == "ok", "re-reading the same window does not count it again"
    _send(c, shifted[300:600], prefix="b")
    second = monitor_pass(app)
    assert second["window"] == "1:2" and second["alerts"][0]["state"] == "firing"
    assert second["alerts"][0]["features"] == ["b"]
    store = AlertStore(db)
    fired = store.events("abc-live")
    assert [(e["rule"], e["event"], e["action"]) for e in fired] == [("feature-drift", "fired", "retrain")]
    assert 'aidevops_alert_firing{model="abc",rule="feature-drift",version="1"} 1.0' in c.get("/metrics").text
    _send(c, X[600:900], prefix="c")  # back to normal
    third = monitor_pass(app)
    assert third["alerts"][0]["state"] == "resolved"
    assert [e["event"] for e in store.events("abc-live")] == ["fired", "resolved"]
    assert {s["rule"]: s["state"] for s in store.states("abc-live")}["feature-drift"] == "resolved"


def test_small_window_says_insufficient_data_and_raises_nothing(monitored):
    app, c, db = monitored
    X, _ = data(seed=13, n=50)
    _send(c, X + 100.0, prefix="s")  # wildly shifted, but only 50 rows
    s = monitor_pass(app)
    assert s["drift"]["status"] == "insufficient data" and s["snapshot"]["max_psi"] is None
    assert all(a["state"] == "ok" for a in s["alerts"])
    assert AlertStore(db).events("abc-live") == []


def test_alert_state_survives_a_server_restart(app_factory, tmp_path):
    db = tmp_path / "deploy.db"
    X, _ = data(seed=14, n=600)
    X[:, 0] += 3.0
    for part, prefix in ((X[:300], "p"), (X[300:], "q")):  # one window per server life
        app = app_factory(db=db, monitor=MONITOR, deployment="abc-restart", monitor_seconds=0)
        with TestClient(app) as c:
            _send(c, part, prefix=prefix)
            s = monitor_pass(app)
    assert s["alerts"][0]["state"] == "firing", "the first window's breach was remembered across the restart"


def test_request_series_read_back_from_the_log(monitored):
    from aidevops_ext.monitoring.series import request_series
    from aidevops_ext.serving.livedata import read_requests

    app, c, db = monitored
    X, _ = data(seed=15, n=100)
    _send(c, X, prefix="t")  # ten requests
    assert c.post("/invocations", json={"inputs": [[1, True, 3]]}).status_code == 400
    app.state.server.requestlog.flush()
    got = read_requests(db, "abc")
    assert list(got["status"]) == [200] * 10 + [400] and set(got["version"]) == {"1"}
    assert (np.diff(got["ts"]) >= 0).all() and (got["latency_ms"] > 0).all()
    assert read_requests(db, "abc", since=float(got["ts"][-1]))["status"].tolist() == [400]
    assert read_requests(db, "nope")["ts"].size == 0
    s = request_series(got["ts"], got["latency_ms"], got["status"], buckets=4)
    assert sum(s["requests"]) == 11 and all(e in (0.0, None) for e in s["error_rate"])


def test_the_server_process_never_imports_the_pipeline_or_the_loop():
    code = "from aidevops_ext.deploy import child\nfrom aidevops_ext.serving import app, monitor, livedata"
    pipeline = ("papermill", "nbclient", "nbformat")
    unrelated = ("aidevops_ext.pipeline", "aidevops_ext.loop", "aidevops_ext.traffic")
    assert modules_loaded_by(code, pipeline, unrelated) == []


def test_a_forced_pass_runs_at_most_once_a_second_and_a_failure_names_no_internals(monitored, monkeypatch):
    app, c, _ = monitored
    server = app.state.server
    passes = []
    real = server.monitor.refresh
    monkeypatch.setattr(server.monitor, "refresh", lambda: passes.append(1) or real())
    for _ in range(5):  # back to back: well within one second of each other
        assert c.get("/monitor", params={"refresh": "1"}).status_code == 200
    assert len(passes) == 1

    def broken():
        raise RuntimeError("secret path /srv/model/x.npz")

    monkeypatch.setattr(server.monitor, "refresh", broken)
    monkeypatch.setattr("aidevops_ext.serving.app.MONITOR_REFRESH_MIN_S", 0.0)
    answer = c.get("/monitor", params={"refresh": "1"})
    assert answer.status_code == 503
    assert "secret" not in answer.text and "RuntimeError" not in answer.text and "server log" in answer.text
