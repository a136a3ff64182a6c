"""Issue 15's forged-label attack, and each rule that stops it.

The attack: a web page open in the user's browser sends drifted rows to the local model server with no
Content-Type (no CORS preflight) under ids it chooses, then labels those ids, so the drift rule fires a
retraining on its labels. Every step must fail: a body with no Content-Type (415), a client-chosen id (the
log is keyed by the server's ids), a wrong Host (421: DNS rebinding), feedback without the deployment's
token (401). The log keeps nothing from any of them, and no alert asks for a retraining. The same drifted
traffic sent the legitimate way does fire the rule, so the test shows the attack would have worked.
"""

from __future__ import annotations

import sqlite3

import numpy as np
import orjson
import pytest
from starlette.testclient import TestClient

from aidevops_ext.monitoring.alertstore import AlertStore
from aidevops_ext.monitoring.rules import parse_monitor
from aidevops_ext.serving.app import host_allowed, host_name, infer_body_kind, require_json
from aidevops_ext.serving.errors import RequestError
from tests.serving.conftest import FEATURE_DRIFT_RETRAINS, FEEDBACK_AUTH, FEEDBACK_TOKEN, data, monitor_pass

OIP = "/v2/models/abc/infer"
MONITOR = parse_monitor(
    {
        "window": 100,
        "min_rows": 50,
        "min_labels": 10,
        "rules": [FEATURE_DRIFT_RETRAINS],
    }
)


def _drifted(n: int = 200) -> np.ndarray:
    X, _ = data(seed=21, n=n)
    X[:, 1] += 4.0  # two reference standard deviations on b
    return X


def _oip_body(rows: np.ndarray, client_id: str) -> bytes:
    tensor = {"name": "x", "shape": list(rows.shape), "datatype": "FP32", "data": rows.ravel().tolist()}
    return orjson.dumps({"id": client_id, "inputs": [tensor]})


def _rows(db, sql: str, *args) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, args).fetchall()


@pytest.fixture
def deployment(app_factory, tmp_path):
    db = tmp_path / "deploy.db"
    app = app_factory(db=db, monitor=MONITOR, deployment="abc-live", monitor_seconds=0, log_flush_seconds=0.05)
    with TestClient(app, base_url="http://127.0.0.1:8080") as c:
        yield app, c, db


def test_the_forged_label_attack_adds_no_label_logs_nothing_and_triggers_no_retraining(deployment):
    app, c, db = deployment
    X = _drifted()
    answered = []
    for i in range(0, len(X), 10):  # two windows of drifted rows, sent as a cross-site page can send them
        attacker_id = f"attacker-{i}"
        plain = c.post(OIP, content=_oip_body(X[i : i + 10], attacker_id))  # no Content-Type: no preflight
        assert plain.status_code == 415, plain.text
        assert "application/json" in plain.json()["error"]
        form = c.post(
            "/invocations",
            content=orjson.dumps({"inputs": X[i : i + 10].tolist()}),
            headers={"Content-Type": "text/plain", "X-Request-ID": attacker_id},
        )
        assert form.status_code == 415, form.text
        rebound = c.post(  # DNS rebinding: the page's own name now points here, so its requests carry it
            OIP,
            content=_oip_body(X[i : i + 10], attacker_id),
            headers={"Content-Type": "application/json", "Host": "evil.example:8080"},
        )
        assert rebound.status_code == 421 and "evil.example" in rebound.json()["error"]
        answered.append(attacker_id)
    for rid in answered:  # then the labels, every way the attack can try
        body = orjson.dumps({"request_id": rid, "labels": [0] * 10})
        assert c.post("/feedback", content=body, headers={"Content-Type": "application/json"}).status_code == 401
        assert c.post("/feedback", content=body).status_code == 401  # no type, no token
        no_type = c.post("/feedback", content=body, headers=FEEDBACK_AUTH)  # even holding the token
        assert no_type.status_code == 415
        wrong_host = c.post(
            "/feedback",
            content=body,
            headers={**FEEDBACK_AUTH, "Content-Type": "application/json", "Host": "evil.example"},
        )
        assert wrong_host.status_code == 421
        guessed = c.post(
            "/feedback", content=body, headers={"Content-Type": "application/json", "Authorization": "Bearer guess"}
        )
        assert guessed.status_code == 401 and "aidevops token" in guessed.json()["error"]
        own_id = c.post("/feedback", content=body, headers={**FEEDBACK_AUTH, "Content-Type": "application/json"})
        assert own_id.status_code == 422 and own_id.json() == {
            "error": own_id.json()["refused_reason"],
            "accepted": 0,
            "refused": 10,
            "refused_reason": own_id.json()["refused_reason"],
        }
    first, second = monitor_pass(app), monitor_pass(app)
    assert _rows(db, "SELECT count(*) FROM request_log") == [(0,)], "nothing of the attack is logged"
    assert _rows(db, "SELECT count(*) FROM feedback") == [(0,)], "no label is stored"
    assert first["logged_rows"] == 0 and second["alerts"][0]["state"] != "firing"
    assert AlertStore(db).events("abc-live", action="retrain") == [], "no retraining is asked for"
    assert "evil.example" not in str(_rows(db, "SELECT * FROM request_log"))


def test_a_client_chosen_id_is_echoed_but_never_keys_the_log_or_a_label(deployment):
    app, c, db = deployment
    X = _drifted(20)
    oip = c.post(OIP, content=_oip_body(X[:10], "attacker-9"), headers={"Content-Type": "application/json"})
    mlflow = c.post("/invocations", json={"inputs": X[10:].tolist()}, headers={"X-Request-ID": "attacker-10"})
    assert oip.status_code == 200 and mlflow.status_code == 200
    assert oip.json()["id"] == "attacker-9", "OIP echoes the client's id in its body"
    server_ids = [oip.headers["x-request-id"], mlflow.headers["x-request-id"]]
    assert "attacker" not in "".join(server_ids) and mlflow.json()["request_id"] == server_ids[1]
    refused = c.post(
        "/feedback", json=[{"request_id": f"attacker-{n}", "label": 0} for n in (9, 10)], headers=FEEDBACK_AUTH
    )
    assert refused.status_code == 422 and refused.json()["refused"] == 2
    app.state.server.requestlog.flush()
    assert sorted(r for (r,) in _rows(db, "SELECT request_id FROM request_log")) == sorted(server_ids)
    assert _rows(db, "SELECT count(*) FROM feedback") == [(0,)]


def test_the_same_drifted_traffic_sent_legitimately_fires_the_retrain_rule(deployment):
    """The control: what the attack sends would have fired the rule had it been let in."""
    app, c, db = deployment
    X = _drifted()
    for i in range(0, 100, 10):
        assert (
            c.post(OIP, content=_oip_body(X[i : i + 10], "x"), headers={"Content-Type": "application/json"}).status_code
            == 200
        )
    monitor_pass(app)
    for i in range(100, 200, 10):
        assert (
            c.post(OIP, content=_oip_body(X[i : i + 10], "x"), headers={"Content-Type": "application/json"}).status_code
            == 200
        )
    assert monitor_pass(app)["alerts"][0]["state"] == "firing"
    assert [e["action"] for e in AlertStore(db).events("abc-live", action="retrain")] == ["retrain"]


def test_the_legitimate_path_with_the_token_stores_labels_and_a_second_label_is_refused(deployment):
    app, c, db = deployment
    X, y = data(seed=22, n=20)
    r = c.post("/invocations", json={"inputs": X[:10].tolist()})
    rid = r.headers["x-request-id"]
    labels = [int(v) for v in y[:10]]
    first = c.post("/feedback", json={"request_id": rid, "labels": labels}, headers=FEEDBACK_AUTH)
    assert first.status_code == 200 and first.json() == {"accepted": 10, "refused": 0}
    # a second label for a row: the first one stays, the later ones are refused and counted (in one body too)
    again = c.post(
        "/feedback",
        json=[{"request_id": rid, "label": 9, "row": 3}, {"request_id": rid, "label": 9, "row": 3}],
        headers=FEEDBACK_AUTH,
    )
    assert again.status_code == 422 and again.json()["refused"] == 2 and "already labelled" in again.json()["error"]
    r2 = c.post(
        "/invocations", json={"inputs": X[10:12].tolist()}, headers={"Content-Type": "application/json; charset=UTF-8"}
    )
    rid2 = r2.headers["x-request-id"]
    mixed = c.post(
        "/feedback",
        json=[{"request_id": rid2, "label": 1, "row": 1}, {"request_id": rid2, "label": 1, "row": 1}],
        headers={**FEEDBACK_AUTH, "Content-Type": "application/json; charset=utf-8"},
    )
    assert mixed.status_code == 200 and mixed.json()["accepted"] == 1 and mixed.json()["refused"] == 1
    stored = _rows(db, "SELECT request_id, row, label FROM feedback ORDER BY id")
    assert stored == [(rid, i, str(v)) for i, v in enumerate(labels)] + [(rid2, 1, "1")]
    assert _rows(db, "SELECT label FROM feedback WHERE request_id = ? AND row = 3", rid) == [(str(labels[3]),)]


def test_labels_for_rows_past_the_request_or_expired_requests_are_refused(deployment):
    app, c, db = deployment
    X, _ = data(seed=23, n=3)
    rid = c.post("/invocations", json={"inputs": X.tolist()}).headers["x-request-id"]
    past = c.post("/feedback", json={"request_id": rid, "label": 1, "row": 3}, headers=FEEDBACK_AUTH)
    assert past.status_code == 422 and "past the end" in past.json()["error"]
    app.state.server.requestlog.flush()
    with sqlite3.connect(db) as conn:  # what retention does to an old request
        conn.execute("DELETE FROM request_log WHERE request_id = ?", (rid,))
    expired = c.post("/feedback", json={"request_id": rid, "label": 1}, headers=FEEDBACK_AUTH)
    assert expired.status_code == 422 and "expired" in expired.json()["error"]


@pytest.mark.parametrize(
    "auth, status",
    [
        (None, 401),
        ("Bearer", 401),
        ("Bearer ", 401),
        (f"Basic {FEEDBACK_TOKEN}", 401),
        (f"Bearer {FEEDBACK_TOKEN}x", 401),
        (f"Bearer {FEEDBACK_TOKEN[:-1]}", 401),
        (f"bearer {FEEDBACK_TOKEN}", 422),  # the scheme is case-insensitive; the unknown id is then refused
        (f"Bearer  {FEEDBACK_TOKEN} ", 422),
    ],
)
def test_feedback_tokens(deployment, auth, status):
    _, c, _ = deployment
    headers = {} if auth is None else {"Authorization": auth}
    r = c.post("/feedback", json={"request_id": "nope", "label": 1}, headers=headers)
    assert r.status_code == status, r.text
    if status == 401:
        assert r.headers["www-authenticate"] == "Bearer" and r.json()["error"].count(". ") == 0


def test_a_server_without_a_feedback_token_takes_no_feedback(app_factory, tmp_path):
    app = app_factory(db=tmp_path / "deploy.db", feedback_token=None)
    with TestClient(app) as c:
        r = c.post("/feedback", json={"request_id": "x", "label": 1}, headers=FEEDBACK_AUTH)
    assert r.status_code == 403 and "feedback token" in r.json()["error"]


@pytest.mark.parametrize(
    "ctype, ok",
    [
        ("application/json", True),
        ("Application/JSON", True),
        ("application/json; charset=utf-8", True),
        ('application/json;charset="UTF-8"', True),
        (None, False),
        ("", False),
        ("text/plain", False),
        ("text/plain; charset=utf-8", False),
        ("application/x-www-form-urlencoded", False),
        ("multipart/form-data; boundary=x", False),
        ("application/jsonx", False),
        ("application/json; charset=latin-1", False),
        ("application/json; boundary=x", False),
    ],
)
def test_json_endpoints_take_only_application_json(ctype, ok):
    if ok:
        require_json(ctype)
    else:
        with pytest.raises(RequestError) as err:
            require_json(ctype)
        assert err.value.status == 415 and "application/json" in err.value.message


@pytest.mark.parametrize(
    "ctype, length, expected",
    [
        (None, b"10", 10),  # what tritonclient sends: no Content-Type, the JSON header's length
        (b"application/octet-stream", b"0", 0),
        (b"application/json", None, None),
        (b"application/json", b"12", 415),  # JSON's type with the binary header is neither
        (b"text/plain", b"12", 415),
        (None, None, 415),
        (None, b"-1", 400),
        (None, b"ten", 400),
    ],
)
def test_infer_takes_json_or_the_binary_extension_as_tritonclient_sends_it(ctype, length, expected):
    if isinstance(expected, int) and expected >= 400:
        with pytest.raises(RequestError) as err:
            infer_body_kind(ctype, length)
        assert err.value.status == expected
    else:
        assert infer_body_kind(ctype, length) == expected


def test_a_binary_infer_without_a_content_type_passes_the_type_gate(deployment):
    """tritonclient's binary requests carry no Content-Type: they reach the parser (no 415)."""
    _, c, _ = deployment
    header = orjson.dumps(
        {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "parameters": {"binary_data_size": 12}}]}
    )
    body = header + np.array([[0.1, 1.0, 10.0]], dtype="<f4").tobytes()
    r = c.post(OIP, content=body, headers={"Inference-Header-Content-Length": str(len(header))})
    assert r.status_code != 415, r.text


@pytest.mark.parametrize(
    "host, allowed, ok",
    [
        (b"127.0.0.1:8080", (), True),
        (b"127.0.0.1", (), True),
        (b"localhost:1", (), True),
        (b"LocalHost", (), True),
        (b"[::1]:8080", (), True),
        (b"[::1]", (), True),
        (b"evil.example", (), False),
        (b"127.0.0.1.evil.example", (), False),
        (b"localhost.evil.example:80", (), False),
        (b"10.0.0.7:8080", (), False),
        (b"10.0.0.7:8080", ("10.0.0.7",), True),
        (b"model.example.com", ("model.example.com",), True),
        (b"api.example.com", (".example.com",), True),
        (b"example.com", (".example.com",), True),
        (b"badexample.com", (".example.com",), False),
        (b"anything", ("*",), True),
    ],
)
def test_host_names(host, allowed, ok):
    assert host_allowed(host_name(host), allowed) is ok


def test_wrong_or_missing_host_is_refused_on_every_route_and_configured_names_are_answered(app_factory):
    app = app_factory(allowed_hosts=("testserver", "models.internal"))
    with TestClient(app) as c:
        for path in ("/ping", "/metrics", "/v2/health/ready", "/openapi.json"):
            r = c.get(path, headers={"Host": "evil.example"})
            assert r.status_code == 421 and "--allowed-host evil.example" in r.json()["error"], path
        assert c.get("/ping", headers={"Host": "models.internal:8080"}).status_code == 200
        assert (
            c.post("/invocations", json={"inputs": [[0, 1, 2]]}, headers={"Host": "x.models.internal"}).status_code
            == 421
        )
    raw = []

    async def send(message):
        raw.append(message)

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    import anyio

    scope = {"type": "http", "method": "GET", "path": "/ping", "headers": [], "query_string": b"", "root_path": ""}
    anyio.run(app, scope, receive, send)
    assert raw[0]["status"] == 400 and b"Host header" in raw[1]["body"]


def test_a_real_server_refuses_the_attack_on_the_wire(server):
    """The same rules through uvicorn and a socket, as a browser would send the requests."""
    import socket

    def send(head: str, body: bytes = b"") -> bytes:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
            s.sendall(head.encode() + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
            return s.recv(65536)

    body = _oip_body(_drifted(2), "attacker-1")
    rebound = send(
        f"POST {OIP} HTTP/1.1\r\nHost: evil.example:{server.port}\r\nContent-Type: application/json\r\n", body
    )
    assert rebound.startswith(b"HTTP/1.1 421")
    no_type = send(f"POST {OIP} HTTP/1.1\r\nHost: localhost:{server.port}\r\n", body)
    assert no_type.startswith(b"HTTP/1.1 415")
    label = orjson.dumps({"request_id": "attacker-1", "label": 0})
    no_token = send(
        f"POST /feedback HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nContent-Type: application/json\r\n", label
    )
    assert no_token.startswith(b"HTTP/1.1 401")
    made_up = send(
        f"POST /feedback HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {FEEDBACK_TOKEN}\r\n",
        label,
    )
    assert made_up.startswith(b"HTTP/1.1 422")


def test_with_several_workers_a_label_waits_for_the_worker_that_answered(app_factory, tmp_path):
    """`serve --workers N`: the request was answered by another process that writes its log every flush, so a
    label for an id unknown here waits up to two flushes for it; a made-up id is still refused."""
    import threading
    import time

    db = tmp_path / "deploy.db"
    app = app_factory(db=db, deployment="abc-live", monitor_seconds=0, log_writers=2, log_flush_seconds=0.5)

    def other_worker_writes() -> None:
        time.sleep(0.4)
        with sqlite3.connect(db) as conn:
            conn.execute(
                "INSERT INTO request_log (request_id, ts, model, version, protocol, status, latency_ms, n_rows, "
                "deployment) VALUES ('w1-7', ?, 'abc', '1', 'mlflow', 200, 1.0, 2, 'abc-live')",
                (time.time(),),
            )

    with TestClient(app) as c:
        c.get("/ping")  # the app has made deploy.db's tables
        writer = threading.Thread(target=other_worker_writes)
        writer.start()
        late = c.post(
            "/feedback",
            json=[{"request_id": "w1-7", "labels": [1, 0]}, {"request_id": "made-up", "label": 1}],
            headers=FEEDBACK_AUTH,
        )
        writer.join()
    assert late.status_code == 200 and late.json()["accepted"] == 2 and late.json()["refused"] == 1, late.text
    assert _rows(db, "SELECT request_id, row FROM feedback ORDER BY id") == [("w1-7", 0), ("w1-7", 1)]
