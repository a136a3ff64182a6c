"""Hostile input on a real server: never a 5xx, always the protocol's error shape, and the server stays up."""

from __future__ import annotations

import json
import socket

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.serving.conftest import FEEDBACK_AUTH

OIP = "/v2/models/abc/infer"
ROW = "[1.5, 2, 3]"


def _post(http: httpx.Client, path: str, body: bytes | str, ctype: str | None = "application/json") -> httpx.Response:
    headers = {} if ctype is None else {"Content-Type": ctype}
    if path == "/feedback":  # hostile bodies from a holder of the token: the body checks are what is tested
        headers.update(FEEDBACK_AUTH)
    return http.post(path, content=body, headers=headers)


def _assert_error_shape(r: httpx.Response, path: str) -> None:
    body = r.json()
    if path == "/invocations":
        assert set(body) == {"error_code", "message"}, body
    elif path == "/feedback" and r.status_code == 422:  # labels refused: the counts come with the sentence
        assert set(body) == {"error", "accepted", "refused", "refused_reason"}, body
    else:
        assert set(body) == {"error"}, body


@pytest.mark.parametrize(
    "body,needle",
    [
        ('{"inputs": [[NaN, 2, 3]]}', "not valid JSON"),
        ('{"inputs": [[Infinity, 2, 3]]}', "not valid JSON"),
        ('{"inputs": [[-Infinity, 2, 3]]}', "not valid JSON"),
        ('{"inputs": [[1e999, 2, 3]]}', "too large"),
        ('{"inputs": [[-1e999, 2, 3]]}', "too large"),
        ('{"inputs": [[1e300, 2, 3]]}', "range"),
        ('{"inputs": [[3.5e38, 2, 3]]}', "range"),
        ('{"inputs": [[2e30, 2, 3]]}', "range"),
        ('{"inputs": [[true, 2, 3]]}', "boolean"),
        ('{"inputs": [[1, false, 3]]}', "boolean"),
        ('{"inputs": [["1", 2, 3]]}', "string"),
        ('{"inputs": [[null, 2, 3]]}', "null"),
        ('{"inputs": [[1, 2]]}', "takes 3"),
        ('{"inputs": [[1, 2, 3], [4, 5]]}', "different lengths"),
        ('{"inputs": [[[1], [2], [3]]]}', "nested"),
        ('{"inputs": []}', "no rows"),
        ('{"inputs": 5}', "list of rows"),
        ('{"inputs": [[1, 2, 3]], "instances": [[1, 2, 3]]}', "exactly one"),
        ('{"nothing": 1}', "exactly one"),
        ("[[1, 2, 3]]", "Received a list"),
        ('{"inputs": [[1, 2, 3]], "params": [1]}', "params"),
        ('{"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2, 3]]}}', "columns"),
        ('{"dataframe_records": [{"a": 1, "b": 2, "c": 3}, {"a": 1}]}', "different keys"),
        ('{"inputs": [[1, 2, 3]]', "not valid JSON"),
        ("", "empty"),
    ],
)
def test_refused_with_400(http, body, needle):
    r = _post(http, "/invocations", body)
    assert r.status_code == 400, r.text
    _assert_error_shape(r, "/invocations")
    assert needle in r.json()["message"], r.json()["message"]


def test_deep_nesting_is_400_not_500(http):
    for depth in (100, 1500, 100_000):
        for path in ("/invocations", OIP, "/feedback"):
            r = _post(http, path, '{"inputs": ' + "[" * depth + "]" * depth + "}")
            assert r.status_code == 400, (path, depth, r.text[:200])
            _assert_error_shape(r, path)
    r = _post(http, "/invocations", '{"a":' * 3000 + "1" + "}" * 3000)
    assert r.status_code == 400


def test_bodies_that_are_not_utf8(http):
    for body in (
        '{"inputs": [[1, 2, 3]]}'.encode("utf-16"),
        '{"inputs": [[1, 2, 3]], "x": "é"}'.encode("latin-1"),
        b'{"inputs": [[1, 2, 3]], "x": "\xff\xfe"}',
    ):
        for path in ("/invocations", OIP, "/feedback"):
            r = _post(http, path, body)
            assert r.status_code == 400, (path, r.text)
            assert "UTF-8" in r.text
    r = _post(http, "/invocations", "a,b,c\n1,2,3\n".encode("utf-16"), "text/csv")
    assert r.status_code == 400


@pytest.mark.parametrize(
    "ctype",
    [
        None,
        "text/plain",
        "application/xml",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/json; charset=utf-16",
        "text/csv; charset=latin-1",
        "application/json; foo=bar",
    ],
)
def test_unsupported_content_types_are_415(http, ctype):
    r = _post(http, "/invocations", '{"inputs": [' + ROW + "]}", ctype)
    assert r.status_code == 415, r.text
    _assert_error_shape(r, "/invocations")


def test_oip_and_feedback_content_type(http):
    r = _post(http, OIP, "x", "text/plain")
    assert r.status_code == 415 and set(r.json()) == {"error"}
    r = _post(http, "/feedback", "x", "text/csv")
    assert r.status_code == 415 and set(r.json()) == {"error"}


def test_50_mb_body_is_413(http, server):
    big = b'{"inputs": [' + b"[1.0, 2.0, 3.0]," * (50 * 1024 * 1024 // 16) + b"[1, 2, 3]]}"
    r = _post(http, "/invocations", big)
    assert r.status_code == 413, r.text[:200]
    _assert_error_shape(r, "/invocations")
    r = _post(http, OIP, big)
    assert r.status_code == 413

    def chunks():
        for _ in range(50):
            yield b" " * (1024 * 1024)

    r = http.post("/invocations", content=chunks(), headers={"Content-Type": "application/json"})  # chunked, no length
    assert r.status_code == 413
    assert server.alive()


def test_413_is_answered_before_the_body_arrives(server):
    """Content-Length over the limit: the answer comes without the server waiting for 50 MB."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(
            b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 52428800\r\n\r\n" + b"[" * 1000
        )
        head = s.recv(4096)
    assert head.startswith(b"HTTP/1.1 413"), head[:100]


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=12), children, max_size=6),
    max_leaves=40,
)
envelopes = st.one_of(
    json_values,
    st.builds(
        lambda k, v: {k: v},
        st.sampled_from(["inputs", "instances", "dataframe_split", "dataframe_records", "params"]),
        json_values,
    ),
    st.builds(lambda v: {"dataframe_split": {"columns": ["a", "b", "c"], "data": v}}, json_values),
    st.builds(lambda v: {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": v}]}, json_values),
    st.builds(
        lambda d, s, v: {"inputs": [{"name": "x", "shape": s, "datatype": d, "data": v}]},
        st.text(max_size=8) | st.sampled_from(["FP32", "INT8", "BOOL", "BYTES", "FP16"]),
        st.lists(st.integers(-2, 5), max_size=3),
        json_values,
    ),
    st.builds(lambda r, lab: {"request_id": r, "label": lab}, json_values, json_values),
)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    payload=envelopes,
    path=st.sampled_from(["/invocations", OIP, "/feedback", "/v2/models/abc/versions/1/infer"]),
    raw=st.booleans(),
)
def test_generated_json_never_5xx(http, payload, path, raw):
    text = json.dumps(payload) if not raw else json.dumps(payload)[: max(1, len(json.dumps(payload)) // 2)]
    r = _post(http, path, text)
    assert r.status_code < 500, (path, text[:300], r.text[:300])
    if r.status_code >= 400:
        _assert_error_shape(r, path)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    body=st.binary(max_size=300),
    ctype=st.sampled_from(["application/json", "text/csv", None, "text/csv; charset=utf-8"]),
)
def test_generated_bytes_never_5xx(http, body, ctype):
    r = _post(http, "/invocations", body, ctype)
    assert r.status_code < 500, (body, r.text[:300])


def test_server_is_up_and_counted_no_5xx(http, server):
    assert server.alive()
    metrics = http.get("/metrics").text
    assert 'code="500"' not in metrics
    assert 'aidevops_requests_total{alias="champion",code="400",model="abc",protocol="mlflow",version="1"}' in metrics
