"""Open Inference Protocol v2: requests and responses shaped as the specification shows, on a real server."""

from __future__ import annotations

import numpy as np
import pytest

from tests.serving.conftest import data


def test_server_metadata_and_health(http):
    meta = http.get("/v2").json()
    assert set(meta) == {"name", "version", "extensions"} and meta["name"] == "aidevops"
    assert isinstance(meta["extensions"], list)
    for path in ("/v2/health/live", "/v2/health/ready", "/v2/models/abc/ready", "/v2/models/abc/versions/1/ready"):
        r = http.get(path)
        assert r.status_code == 200 and r.content == b"", path


def test_model_metadata_tensor_specs(http):
    meta = http.get("/v2/models/abc").json()
    assert meta == {
        "name": "abc",
        "versions": ["1"],
        "platform": "aidevops",
        "inputs": [{"name": "input-0", "datatype": "FP32", "shape": [-1, 3]}],
        "outputs": [
            {"name": "predict", "datatype": "INT64", "shape": [-1]},
            {"name": "predict_proba", "datatype": "FP32", "shape": [-1, 3]},
        ],
    }
    assert http.get("/v2/models/abc/versions/1").json()["name"] == "abc"


def test_infer_flat_data_as_in_the_specification(http, reg):
    X, _ = data(3, 2)
    request = {
        "id": "42",
        "inputs": [{"name": "input-0", "shape": [2, 3], "datatype": "FP32", "data": X.ravel().tolist()}],
    }
    r = http.post("/v2/models/abc/infer", json=request)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_name"] == "abc" and body["model_version"] == "1" and body["id"] == "42"
    # the client's id is echoed in the body; the header and the log carry the server's
    assert r.headers["x-request-id"] not in ("", "42")
    pred, proba = body["outputs"]
    assert pred == {"name": "predict", "shape": [2], "datatype": "INT64", "data": reg.champion.predict(X).tolist()}
    assert proba["name"] == "predict_proba" and proba["shape"] == [2, 3] and proba["datatype"] == "FP32"
    np.testing.assert_allclose(np.array(proba["data"]).reshape(2, 3), reg.champion.predict_proba(X), rtol=1e-6)


def test_infer_nested_data_requested_output_and_version(http, reg):
    X, _ = data(4, 3)
    request = {
        "inputs": [{"name": "input-0", "shape": [3, 3], "datatype": "FP64", "data": X.tolist()}],
        "outputs": [{"name": "predict"}],
    }
    r = http.post("/v2/models/abc/versions/1/infer", json=request)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [o["name"] for o in body["outputs"]] == ["predict"]
    assert body["outputs"][0]["data"] == reg.champion.predict(X).tolist()
    assert body["id"] == r.headers["x-request-id"]  # no id given: the server's request id


@pytest.mark.parametrize(
    "bad,needle",
    [
        ({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2]}]}, "needs 3"),
        ({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}, "takes 3"),
        ({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "BOOL", "data": [True, False, True]}]}, "BOOL"),
        ({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, True, 3]}]}, "boolean"),
        ({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "INT32", "data": [1, 2.5, 3]}]}, "integers"),
        ({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP16", "data": [1, 2, 1e6]}]}, "range"),
        ({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, None, 3]}]}, "null"),
        ({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 1e300]}]}, "range"),
        ({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "COMPLEX", "data": [1, 2, 3]}]}, "datatype"),
        ({"inputs": []}, "non-empty"),
        (
            {
                "inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}],
                "outputs": [{"name": "nope"}],
            },
            "Unknown output",
        ),
        ([1, 2, 3], "JSON object"),
    ],
)
def test_infer_errors_in_the_protocols_shape(http, bad, needle):
    r = http.post("/v2/models/abc/infer", json=bad)
    assert r.status_code == 400, r.text
    assert set(r.json()) == {"error"} and needle in r.json()["error"]


def test_unknown_model_or_version_is_404(http):
    ok = {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}
    for path in ("/v2/models/nope/infer", "/v2/models/abc/versions/99/infer"):
        r = http.post(path, json=ok)
        assert r.status_code == 404 and "error" in r.json()
    assert http.get("/v2/models/nope").status_code == 404
    assert http.get("/v2/models/abc/versions/99/ready").status_code == 404


def test_front_door_leaves_other_methods_and_paths_to_the_router(http):
    r = http.get("/invocations")
    assert r.status_code == 405 and "error" in r.json() and "POST" in r.headers.get("allow", "")
    assert http.get("/v2/models/abc/infer").status_code == 405
    for path in ("/v2/models//infer", "/v2/models/abc/versions//infer", "/v2/models/abc/x/1/infer", "/invocations/x"):
        r = http.post(path, json={})
        assert r.status_code == 404 and set(r.json()) == {"error"}, path
