"""Monitoring any MLflow model: a scikit-learn pipeline on numeric + category columns with missing values.

The issue's case: after 300 requests the monitor said "the model carries no reference profile" with
`logged_rows` 0. Here the server finds the profile from the version tag, logs every column, and the
monitor reports drift on category columns, missing-rate changes and live accuracy from /feedback.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient

from aidevops_ext.monitoring.rules import parse_monitor
from aidevops_ext.serving.livedata import read_window
from aidevops_ext.serving.loader import load_model_uri
from tests.serving.conftest import FEEDBACK_AUTH, monitor_pass
from tests.serving.tabular import COLUMNS, NAME, labels, register, table

MONITOR = parse_monitor(
    {
        "window": 300,
        "min_rows": 200,
        "min_labels": 50,
        "rules": [{"name": "feature-drift", "metric": "psi", "op": ">", "threshold": 0.25, "any_feature": True}],
    }
)


def _split(frame: pd.DataFrame) -> dict:
    data = frame[COLUMNS].astype(object).where(frame[COLUMNS].notna(), None).to_numpy().tolist()
    return {"dataframe_split": {"columns": COLUMNS, "data": data}}


def _send(c: TestClient, frame: pd.DataFrame, prefix: str, y=None) -> None:
    for i in range(0, len(frame), 10):  # ten rows a request, nulls included
        r = c.post("/invocations", json=_split(frame.iloc[i : i + 10]))
        assert r.status_code == 200, r.text
        if y is not None:
            rid = r.headers["x-request-id"]
            labels = [int(v) for v in y[i : i + 10]]
            fb = c.post("/feedback", json={"request_id": rid, "labels": labels}, headers=FEEDBACK_AUTH)
            assert fb.status_code == 200, fb.text


@pytest.fixture
def monitored(reg, app_factory, tmp_path):
    version = register(reg)
    db = tmp_path / "deploy.db"
    app = app_factory(f"models:/{NAME}/{version}", db=db, monitor=MONITOR, deployment="tab-live", monitor_seconds=0)
    with TestClient(app) as c:
        yield app, c, db, version


def test_the_profile_tagged_on_the_version_is_loaded_and_tells_the_task(monitored):
    app, _, _, _ = monitored
    model = app.state.server.slots.active
    assert model.kind == "pyfunc" and model.profile is not None and model.task == "classification"
    kinds = {f["name"]: f["kind"] for f in model.profile["features"]}
    assert kinds == {"income": "numeric", "age": "numeric", "city": "category", "plan": "category"}


def test_every_column_is_logged_and_in_distribution_traffic_is_not_drift(monitored):
    app, c, db, version = monitored
    live = table(21, 300)
    y = labels(live)
    _send(c, live, "ok", y)
    s = monitor_pass(app)
    assert s["logged_rows"] == 300
    assert s["drift"]["status"] == "ok" and s["drift"]["drifted"] == [], s["drift"]["drifted"]
    feats = {f["name"]: f for f in s["drift"]["features"]}
    assert feats["city"]["kind"] == "category" and feats["income"]["kind"] == "numeric"
    assert {t["category"] for t in feats["city"]["top_categories"]} >= {"paris", "lyon", "nice"}
    assert feats["income"]["missing_rate"] == pytest.approx(live["income"].isna().mean())
    win = read_window(db, NAME, version, rows=300)
    assert list(win.frame.columns) == COLUMNS and win.frame["city"].tolist() == live["city"].tolist()
    assert s["prediction_drift"]["status"] == "ok"
    q = s["quality"]  # live accuracy through /feedback, for a model that never said its task
    truth = float((app.state.server.slots.active.pyfunc.predict(live) == y).mean())
    assert q["labelled"] == 300 and q["accuracy"] == pytest.approx(truth)


def test_a_changed_category_mix_and_a_missing_rate_jump_are_drift_with_shares(monitored):
    app, c, _, _ = monitored
    live = table(22, 300, city_p=(0.1, 0.2, 0.7))
    live.loc[:149, "income"] = np.nan  # half the incomes missing, against 5 % in training
    _send(c, live, "moved")
    s = monitor_pass(app)
    assert set(s["drift"]["drifted"]) == {"city", "income"}, s["drift"]["drifted"]
    feats = {f["name"]: f for f in s["drift"]["features"]}
    city = feats["city"]
    assert "psi" in city["reasons"] and city["psi"] > 0.25 and city["chi2_pvalue"] < 1e-6
    nice = next(t for t in city["top_categories"] if t["category"] == "nice")
    assert nice["reference"] == pytest.approx(0.1, abs=0.03) and nice["live"] == pytest.approx(0.7, abs=0.08)
    assert "missing" in feats["income"]["reasons"]
    assert s["alerts"][0]["state"] == "firing" and "city" in s["alerts"][0]["features"]
    assert 'aidevops_drift_psi{feature="city",model="tabular"' in c.get("/metrics").text


def test_a_profile_beside_a_model_folder_is_found(reg, tmp_path):
    import mlflow.artifacts

    from aidevops_ext import registry

    version = register(reg)
    registry.configure(reg.ws)
    local = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{NAME}/{version}", dst_path=str(tmp_path / "m"))
    assert load_model_uri(local, reg.ws, allow_pickle=True).profile is None  # nothing beside it yet
    profile = {
        "profile_version": 2,
        "n_rows": 1,
        "n_bins": 10,
        "features": [
            {
                "name": "city",
                "kind": "category",
                "categories": ["paris"],
                "counts": [1],
                "other_count": 0,
                "missing_rate": 0.0,
                "unseen_rate": 0.0,
                "bin_edges": [],
            }
        ],
        "predictions": None,
    }
    (tmp_path / "m" / "reference_profile.json").write_text(json.dumps(profile))
    shutil.copy(tmp_path / "m" / "reference_profile.json", tmp_path / "reference_profile.json")
    model = load_model_uri(local, reg.ws, allow_pickle=True)
    assert model.profile["features"][0]["name"] == "city"


def test_the_try_it_body_is_the_models_own_input_example(monitored):
    app, c, _, _ = monitored
    body = app.state.server.slots.active.describe()["example"]
    assert list(body) == ["dataframe_split"] and body["dataframe_split"]["columns"] == COLUMNS
    assert len(body["dataframe_split"]["data"]) == 1
    r = c.post("/invocations", json=body)
    assert r.status_code == 200 and len(r.json()["predictions"]) == 1


def test_the_monitor_panel_reads_a_foreign_versions_profile_once_into_the_deployment_cache(reg):
    from aidevops_ext.deploy import observe
    from aidevops_ext.deploy.versions import cache_dir

    version = register(reg)
    task, profile = observe._reference(reg.ws, NAME, version)
    assert task == "classification" and [f["name"] for f in profile["features"]] == COLUMNS
    cached = cache_dir(reg.ws, NAME, version) / "reference_profile.json"
    assert json.loads(cached.read_text()) == profile


def test_a_foreign_model_without_a_profile_still_gets_live_quality_from_feedback(app_factory, tmp_path):
    """`sum` (a PythonModel returning each row's sum, float output signature) has no profile: its task comes
    from the signature, and the labels sent to /feedback give a live MAE."""
    app = app_factory(
        "models:/sum@champion", db=tmp_path / "deploy.db", monitor=MONITOR, deployment="sum-live", monitor_seconds=0
    )
    rng = np.random.default_rng(5)
    with TestClient(app) as c:
        assert app.state.server.slots.active.task == "regression"
        for _ in range(30):
            rows = rng.normal(size=(10, 3)).round(3).tolist()
            r = c.post("/invocations", json={"dataframe_split": {"columns": ["a", "b", "c"], "data": rows}})
            assert r.status_code == 200, r.text
            labels = [sum(row) + 1.0 for row in rows]  # every prediction off by exactly 1
            fb = {"request_id": r.headers["x-request-id"], "labels": labels}
            assert c.post("/feedback", json=fb, headers=FEEDBACK_AUTH).status_code == 200
        s = monitor_pass(app)
    assert s["logged_rows"] == 300 and s["drift"] is None
    assert s["quality"]["labelled"] == 300 and s["quality"]["mae"] == pytest.approx(1.0)


def test_a_request_log_from_before_frames_gains_the_column_and_still_reads(tmp_path):
    import sqlite3

    from aidevops_ext.serving.requestlog import connect

    db = tmp_path / "deploy.db"
    old = sqlite3.connect(db)
    old.execute(
        "CREATE TABLE request_log (id INTEGER PRIMARY KEY, request_id TEXT NOT NULL, ts REAL NOT NULL, "
        "model TEXT NOT NULL, version TEXT NOT NULL, alias TEXT, protocol TEXT NOT NULL, status INTEGER NOT NULL, "
        "latency_ms REAL NOT NULL, n_rows INTEGER, n_features INTEGER, input_rows INTEGER, row_step INTEGER, "
        "inputs BLOB, predictions TEXT, error TEXT)"
    )
    old.execute(
        "INSERT INTO request_log (request_id, ts, model, version, protocol, status, latency_ms, n_rows, n_features, "
        "input_rows, row_step, inputs, predictions) VALUES ('r', 1.0, 'm', '1', 'mlflow', 200, 1.0, 1, 2, 1, 1, ?, '[0]')",
        (np.array([[1.0, 2.0]], "<f4").tobytes(),),
    )
    old.commit()
    old.close()
    connect(db).close()
    win = read_window(db, "m", "1", rows=10)
    assert win.frame is None and win.rows.tolist() == [[1.0, 2.0]] and win.row_predictions == [0]
