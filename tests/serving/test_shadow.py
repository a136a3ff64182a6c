"""Shadow: a version that answers a mirrored copy of live traffic after the client's answer is sent.

In-process servers over the session registry (abc v1 active; v1 or v2 as the shadow), a real deploy.db,
feedback labels through /feedback: the client's answers are what they are without a shadow, the shadow
log fills, agreement is 1.0 with the same model and below 1 with another, labels give both accuracies
with Wilson intervals, and the mirror's queue is bounded.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from starlette.testclient import TestClient

from aidevops_ext.serving.loader import load_model_uri
from aidevops_ext.serving.shadow import ShadowMirror, summary
from tests.serving.conftest import ADMIN_TOKEN, FEEDBACK_AUTH, data
from tests.support.polling import poll

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
DEPLOYMENT = "abc-live"


def _rows(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    X, y = data(seed, n)
    return X.round(3), y


def _wait(predicate, timeout: float = 20.0):
    return poll(predicate, seconds=timeout, what="the shadow log to fill", interval=0.05)


def _logged(db, n: int, version: str) -> dict:
    return _wait(lambda: (s := summary(db, DEPLOYMENT, version)) is not None and s["requests"] >= n and s)


@pytest.fixture
def served(app_factory, tmp_path):
    db = tmp_path / "deploy.db"
    app = app_factory(db=db, deployment=DEPLOYMENT, monitor_seconds=0)
    with TestClient(app, headers=FEEDBACK_AUTH) as c:
        yield c, app, db


def _send(c: TestClient, X: np.ndarray, per_request: int = 2) -> list[tuple[str, list]]:
    out = []
    for i in range(0, len(X), per_request):
        r = c.post("/invocations", json={"inputs": X[i : i + per_request].tolist()})
        assert r.status_code == 200, r.text
        out.append((r.headers["x-request-id"], r.json()["predictions"]))
    return out


def test_mirrored_requests_get_the_same_answers_and_a_same_model_shadow_agrees_fully(served):
    c, app, db = served
    X, _ = _rows(3, 40)
    before = [p for _, p in _send(c, X)]
    r = c.post("/admin/shadow", json={"model_uri": "models:/abc/1", "reason": "same model"}, headers=ADMIN)
    assert r.status_code == 200, r.text
    assert r.json()["slots"]["shadow"]["version"] == "1"
    after = _send(c, X)
    assert [p for _, p in after] == before  # the shadow changes nothing a client gets
    s = _logged(db, len(after), "1")
    assert s["requests"] == len(after) and s["rows"] == len(X) and s["errors"] == 0
    assert s["agreement_rate"] == 1.0
    assert s["active_accuracy"] is None and s["shadow_accuracy"] is None  # no labels yet
    assert app.state.server.slots.describe()["shadow"]["dropped"] == 0
    _wait(lambda: app.state.server.slots.describe()["shadow"]["compared"] == len(after))
    metrics = c.get("/metrics").text
    assert f'aidevops_shadow_mirrored_total{{model="abc",version="1"}} {float(len(after))}' in metrics
    assert 'aidevops_shadow_dropped_total{model="abc",version="1"} 0.0' in metrics
    assert 'aidevops_shadow_agreement{model="abc",version="1"} 1.0' in metrics


def test_a_request_for_probabilities_is_compared_on_the_active_versions_labels(served):
    c, app, db = served
    assert c.post("/admin/shadow", json={"model_uri": "models:/abc/1"}, headers=ADMIN).status_code == 200
    X, _ = _rows(4, 6)
    body = {
        "inputs": [{"name": "input-0", "shape": list(X.shape), "datatype": "FP32", "data": X.ravel().tolist()}],
        "outputs": [{"name": "predict_proba"}],
    }
    r = c.post("/v2/models/abc/infer", json=body)
    assert r.status_code == 200 and r.json()["outputs"][0]["name"] == "predict_proba"
    s = _logged(db, 1, "1")
    assert s["rows"] == len(X) and s["agreement_rate"] == 1.0


def test_a_different_shadow_disagrees_somewhere_and_labels_give_both_accuracies(served, reg):
    c, app, db = served
    assert c.post("/admin/shadow", json={"model_uri": "models:/abc/2"}, headers=ADMIN).status_code == 200
    X, y = _rows(7, 200)
    sent = _send(c, X, per_request=4)
    s = _logged(db, len(sent), "2")
    v1, v2 = reg.champion.predict(X), reg.v2.predict(X)
    assert s["agreement_rate"] == pytest.approx(float(np.mean(v1 == v2)))
    assert s["agreement_rate"] < 1.0
    for k, (rid, _) in enumerate(sent):
        labels = [int(v) for v in y[4 * k : 4 * k + 4]]
        assert c.post("/feedback", json={"request_id": rid, "labels": labels}).status_code == 200
    s = _wait(lambda: (s := summary(db, DEPLOYMENT, "2"))["active_accuracy"] is not None and s)
    active, shadow = s["active_accuracy"], s["shadow_accuracy"]
    assert active["labels"] == shadow["labels"] == len(X)
    assert active["value"] == pytest.approx(float(np.mean(v1 == y)))
    assert shadow["value"] == pytest.approx(float(np.mean(v2 == y)))
    for acc in (active, shadow):
        assert 0.0 <= acc["low"] < acc["value"] < acc["high"] <= 1.0  # a Wilson interval around it


def test_the_client_is_answered_while_the_shadow_is_still_busy(served, reg):
    c, app, db = served
    gate = threading.Event()
    slow = load_model_uri("models:/abc/2", reg.ws)
    predict = slow.predict
    armed = []

    def blocked(X, params=None):
        if armed:
            gate.wait(30)
        return predict(X, params)

    slow.predict = blocked
    slots = app.state.server.slots
    slots.set_shadow(slow, actor="test")  # smoke-tested while not armed
    armed.append(True)
    X, _ = _rows(11, 2)
    r = c.post("/invocations", json={"inputs": X.tolist()})
    assert r.status_code == 200 and r.json()["predictions"] == reg.champion.predict(X).tolist()
    assert slots.describe()["shadow"]["compared"] == 0  # answered while the shadow had not answered yet
    gate.set()
    _wait(lambda: slots.describe()["shadow"]["compared"] == 1)
    assert _logged(db, 1, "2")["requests"] == 1


def test_the_mirror_queue_is_bounded_and_counts_what_it_drops(reg, tmp_path):
    gate = threading.Event()
    model = load_model_uri("models:/abc/2", reg.ws)
    predict = model.predict
    model.predict = lambda X, params=None: (gate.wait(30), predict(X, params))[1]
    mirror = ShadowMirror(model, tmp_path / "deploy.db", DEPLOYMENT, queue_size=3)
    active = load_model_uri("models:/abc/1", reg.ws)
    X, _ = _rows(1, 1)
    accepted = [mirror.offer(f"r{i}", active, X, active.predict(X)) for i in range(10)]
    stats = mirror.stats
    assert stats.mirrored + stats.dropped == 10 and 3 <= stats.mirrored <= 4  # the queue, plus one being predicted
    assert accepted.count(False) == stats.dropped
    gate.set()
    mirror.stop()
    assert stats.compared == stats.mirrored
    assert summary(tmp_path / "deploy.db", DEPLOYMENT, "2")["requests"] == stats.mirrored


def test_shadow_needs_the_admin_token_and_a_registry_uri(served):
    c, app, _ = served
    r = c.post("/admin/shadow", json={"model_uri": "models:/abc/2"})
    assert r.status_code == 401
    r = c.post("/admin/shadow", json={"model_uri": "/tmp/abc.npz"}, headers=ADMIN)
    assert r.status_code == 400 and "registry URI" in r.json()["error"]
    r = c.post("/admin/shadow/clear", json={}, headers=ADMIN)
    assert r.status_code == 409 and "no shadow" in r.json()["error"]
    assert app.state.server.slots.state.shadow is None


def test_stopping_the_shadow_stops_mirroring_and_keeps_its_log(served):
    c, app, db = served
    assert c.post("/admin/shadow", json={"model_uri": "models:/abc/2"}, headers=ADMIN).status_code == 200
    X, _ = _rows(5, 6)
    sent = _send(c, X)
    _logged(db, len(sent), "2")
    r = c.post("/admin/shadow/clear", json={"reason": "seen enough"}, headers=ADMIN)
    assert r.status_code == 200 and r.json()["slots"]["shadow"] is None
    assert r.json()["event"]["operation"] == "shadow_stop"
    _send(c, X)
    assert summary(db, DEPLOYMENT, "2")["requests"] == len(sent)  # nothing mirrored once stopped


def test_the_queue_is_bounded_in_bytes_too_and_keeps_a_copy_of_the_first_rows_only(reg, tmp_path):
    gate = threading.Event()
    model = load_model_uri("models:/abc/2", reg.ws)
    predict = model.predict
    model.predict = lambda X, params=None: (gate.wait(30), predict(X, params))[1]
    active = load_model_uri("models:/abc/1", reg.ws)
    X, _ = _rows(2, 10)  # 10 rows x 3 float32 values: 120 bytes
    mirror = ShadowMirror(model, tmp_path / "deploy.db", DEPLOYMENT, queue_bytes=300)
    accepted = [mirror.offer(f"r{i}", active, X, active.predict(X)) for i in range(5)]
    assert accepted == [True, True, False, False, False] and mirror.stats.dropped == 3
    gate.set()
    mirror.stop()
    big, _ = _rows(3, 1000)
    mirror = ShadowMirror(model, tmp_path / "deploy.db", DEPLOYMENT, max_rows=100)
    assert mirror.offer("big", active, big, active.predict(big))
    mirror.stop()
    s = summary(tmp_path / "deploy.db", DEPLOYMENT, "2")
    assert s["requests"] == 3 and s["rows"] == 2 * 10 + 100  # the big batch: its first 100 rows


def test_the_shadow_log_keeps_its_newest_rows_per_deployment(reg, tmp_path):
    model, active = load_model_uri("models:/abc/2", reg.ws), load_model_uri("models:/abc/1", reg.ws)
    X, _ = _rows(6, 1)
    mirror = ShadowMirror(model, tmp_path / "deploy.db", DEPLOYMENT, retain_rows=5)
    other = ShadowMirror(model, tmp_path / "deploy.db", "another", retain_rows=5)
    for i in range(12):
        assert mirror.offer(f"r{i}", active, X, active.predict(X))
    assert other.offer("o0", active, X, active.predict(X))
    mirror.stop()
    other.stop()
    assert summary(tmp_path / "deploy.db", DEPLOYMENT, "2")["requests"] == 5
    assert summary(tmp_path / "deploy.db", "another", "2")["requests"] == 1  # another deployment's rows stay
