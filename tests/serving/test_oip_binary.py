"""The binary tensor data extension of the Open Inference Protocol on a real server: tritonclient's HTTP client
with its defaults (binary inputs, binary outputs) gets the JSON path's answers, and broken binary bodies are
one-sentence 400s."""

from __future__ import annotations

import json
import struct

import httpx
import numpy as np
import pandas as pd
import pytest
import tritonclient.http as triton_http
from tritonclient.utils import InferenceServerException, deserialize_bytes_tensor, serialize_byte_tensor

from aidevops_ext.serving.errors import RequestError
from aidevops_ext.serving.protocols import oip, oip_binary
from tests.serving.conftest import data, start_server, stop_server
from tests.serving.tabular import NAME as TABULAR
from tests.serving.tabular import register, table

OIP = "/v2/models/abc/infer"
BINARY = {"Content-Type": "application/octet-stream"}


@pytest.fixture(scope="module")
def abc(reg):
    s = start_server(reg, "models:/abc@champion", "--follow-alias", "0")
    yield s
    stop_server(s)


@pytest.fixture(scope="module")
def tabular(reg):
    s = start_server(reg, f"models:/{TABULAR}/{register(reg)}", "--follow-alias", "0")
    yield s
    stop_server(s)


def _client(server) -> triton_http.InferenceServerClient:
    return triton_http.InferenceServerClient(url=f"127.0.0.1:{server.port}", network_timeout=60)


def _json_outputs(server, request: dict, path: str = OIP) -> dict[str, np.ndarray]:
    r = httpx.post(server.url + path, json=request, timeout=60)
    assert r.status_code == 200, r.text
    return {o["name"]: np.array(o["data"]).reshape(o["shape"]) for o in r.json()["outputs"]}


def _binary_body(header: dict, *chunks: bytes) -> tuple[bytes, dict]:
    head = json.dumps(header).encode()
    return head + b"".join(chunks), {**BINARY, "Inference-Header-Content-Length": str(len(head))}


@pytest.mark.parametrize("rows", [1, 1000])
def test_tritonclient_defaults_get_the_json_answers(abc, rows):
    X, _ = data(7, rows)
    inp = triton_http.InferInput("input-0", list(X.shape), "FP32")
    inp.set_data_from_numpy(X)  # binary_data=True: the JSON header, then the raw float32 bytes
    result = _client(abc).infer("abc", [inp])  # no outputs named: tritonclient asks for all, in binary
    expected = _json_outputs(
        abc, {"inputs": [{"name": "input-0", "shape": list(X.shape), "datatype": "FP32", "data": X.ravel().tolist()}]}
    )
    header = result.get_response()
    assert {o["name"]: o["datatype"] for o in header["outputs"]} == {"predict": "INT64", "predict_proba": "FP32"}
    assert all("binary_data_size" in o["parameters"] for o in header["outputs"])
    predict = result.as_numpy("predict")
    assert predict.dtype == np.int64 and predict.shape == (rows,)
    np.testing.assert_array_equal(predict, expected["predict"])
    proba = result.as_numpy("predict_proba")
    assert proba.dtype == np.float32 and proba.shape == (rows, 3)
    np.testing.assert_array_equal(proba, expected["predict_proba"].astype(np.float32))


def test_requested_outputs_choose_binary_or_json_one_by_one(abc):
    X, _ = data(8, 5)
    inp = triton_http.InferInput("input-0", list(X.shape), "FP32")
    inp.set_data_from_numpy(X)
    outputs = [
        triton_http.InferRequestedOutput("predict", binary_data=False),
        triton_http.InferRequestedOutput("predict_proba", binary_data=True),
    ]
    result = _client(abc).infer("abc", [inp], outputs=outputs)
    header = {o["name"]: o for o in result.get_response()["outputs"]}
    assert "data" in header["predict"] and "parameters" not in header["predict"]
    assert "data" not in header["predict_proba"] and header["predict_proba"]["parameters"]["binary_data_size"] == 60
    np.testing.assert_array_equal(result.as_numpy("predict"), np.array(header["predict"]["data"]))
    assert result.as_numpy("predict_proba").shape == (5, 3)


def test_int64_and_fp64_binary_inputs_are_cast_like_json_ones(abc):
    X = np.array([[1, 2, 10], [0, -1, 12]], dtype=np.int64)
    inp = triton_http.InferInput("input-0", [2, 3], "INT64")
    inp.set_data_from_numpy(X)
    result = _client(abc).infer("abc", [inp])
    expected = _json_outputs(
        abc, {"inputs": [{"name": "input-0", "shape": [2, 3], "datatype": "INT64", "data": X.tolist()}]}
    )
    np.testing.assert_array_equal(result.as_numpy("predict"), expected["predict"])
    inp = triton_http.InferInput("input-0", [2, 3], "FP64")
    inp.set_data_from_numpy(X.astype(np.float64))
    np.testing.assert_array_equal(_client(abc).infer("abc", [inp]).as_numpy("predict"), expected["predict"])


def _datatype(column: pd.Series) -> str:
    return "FP64" if pd.api.types.is_numeric_dtype(column) else "BYTES"


@pytest.mark.parametrize("rows", [1, 1000])
def test_a_tabular_pyfunc_takes_binary_float_and_string_columns(tabular, rows):
    frame = table(3, rows, missing=0.0)
    inputs = []
    for column in frame.columns:
        kind = _datatype(frame[column])
        inp = triton_http.InferInput(column, [rows], kind)
        inp.set_data_from_numpy(frame[column].to_numpy(dtype=object if kind == "BYTES" else np.float64))
        inputs.append(inp)
    result = _client(tabular).infer(TABULAR, inputs)
    json_inputs = [
        {
            "name": c,
            "shape": [rows],
            "datatype": _datatype(frame[c]),
            "data": frame[c].tolist(),
        }
        for c in frame.columns
    ]
    expected = _json_outputs(tabular, {"inputs": json_inputs}, f"/v2/models/{TABULAR}/infer")
    np.testing.assert_array_equal(result.as_numpy("predict"), expected["predict"])


def test_a_json_request_may_ask_for_binary_outputs(abc):
    X, _ = data(9, 2)
    body = {
        "inputs": [{"name": "input-0", "shape": [2, 3], "datatype": "FP32", "data": X.ravel().tolist()}],
        "outputs": [{"name": "predict_proba", "parameters": {"binary_data": True}}],
    }
    r = httpx.post(abc.url + OIP, json=body, timeout=30)
    assert r.status_code == 200, r.text
    n = int(r.headers["inference-header-content-length"])
    header = json.loads(r.content[:n])
    assert header["outputs"][0]["parameters"] == {"binary_data_size": 24}
    proba = np.frombuffer(r.content[n:], dtype="<f4").reshape(2, 3)
    expected = _json_outputs(abc, {"inputs": body["inputs"]})
    np.testing.assert_array_equal(proba, expected["predict_proba"].astype(np.float32))


def test_bytes_tensors_are_encoded_as_tritonclient_decodes_them():
    values = np.array(["paris", "", "nice é", "x" * 300], dtype=object)
    raw = oip_binary.tensor_bytes(values, "BYTES")
    assert [v.decode() for v in deserialize_bytes_tensor(raw)] == values.tolist()
    sent = serialize_byte_tensor(values).item()
    decoded = oip_binary.Tensors(memoryview(sent)).take(len(sent), [2, 2], "BYTES", "Input 'x'")
    assert decoded.tolist() == values.reshape(2, 2).tolist()


def _refusal(server, body: bytes, headers: dict) -> str:
    r = httpx.post(server.url + OIP, content=body, headers=headers, timeout=30)
    assert r.status_code == 400, (r.status_code, r.text)
    message = r.json()["error"]
    assert message.count(". ") == 0 and message.endswith("."), message  # one sentence
    return message


def _fp32_header(rows: int, size: int) -> dict:
    return {
        "inputs": [
            {"name": "input-0", "shape": [rows, 3], "datatype": "FP32", "parameters": {"binary_data_size": size}}
        ]
    }


def test_broken_binary_bodies_are_one_sentence_400s(abc):
    X = np.ones((2, 3), np.float32).tobytes()
    truncated = _refusal(abc, *_binary_body(_fp32_header(2, 24), X[:20]))
    assert "truncated" in truncated
    body, headers = _binary_body(_fp32_header(2, 24), X)
    too_long = _refusal(abc, body, {**headers, "Inference-Header-Content-Length": str(len(body) + 10)})
    assert "Inference-Header-Content-Length" in too_long
    wrong_size = _refusal(abc, *_binary_body(_fp32_header(2, 20), X[:20]))
    assert "needs 24" in wrong_size
    int8 = {
        "inputs": [{"name": "input-0", "shape": [2, 3], "datatype": "INT64", "parameters": {"binary_data_size": 24}}]
    }
    assert "INT64" in _refusal(abc, *_binary_body(int8, X))
    leftover = _refusal(abc, *_binary_body(_fp32_header(2, 24), X, b"\x00" * 8))
    assert "8 bytes" in leftover
    not_json = _refusal(abc, b"\x00\x01garbage" + X, {**BINARY, "Inference-Header-Content-Length": "9"})
    assert "JSON" in not_json
    both = _fp32_header(2, 24)
    both["inputs"][0]["data"] = [1, 2, 3, 4, 5, 6]
    assert "one way" in _refusal(abc, *_binary_body(both, X))
    nan = np.full((2, 3), np.nan, np.float32).tobytes()
    assert "NaN" in _refusal(abc, *_binary_body(_fp32_header(2, 24), nan))


def test_broken_bytes_elements_are_400s(tabular):
    head = {"inputs": [{"name": "city", "shape": [2], "datatype": "BYTES", "parameters": {"binary_data_size": 10}}]}
    body, headers = _binary_body(head, struct.pack("<I", 2) + b"ok" + struct.pack("<I", 9))
    r = httpx.post(f"{tabular.url}/v2/models/{TABULAR}/infer", content=body, headers=headers, timeout=30)
    assert r.status_code == 400 and "runs past" in r.json()["error"], r.text


def test_a_body_that_is_neither_json_nor_binary_names_the_extension(abc):
    X, _ = data(1, 2)
    header = json.dumps(_fp32_header(2, 24)).encode()
    # what tritonclient sends, less its Inference-Header-Content-Length header
    r = httpx.post(abc.url + OIP, content=header + X.tobytes(), headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    message = r.json()["error"]
    assert "binary tensor data extension" in message and "Inference-Header-Content-Length" in message, message
    assert "binary_data_size" in message


def test_the_server_says_it_speaks_the_extension(abc):
    assert "binary_tensor_data" in httpx.get(abc.url + "/v2").json()["extensions"]
    assert _client(abc).get_server_metadata()["extensions"] == ["binary_tensor_data"]


def test_tritonclient_errors_carry_the_servers_sentence(abc):
    inp = triton_http.InferInput("input-0", [1, 2], "FP32")
    inp.set_data_from_numpy(np.ones((1, 2), np.float32))
    with pytest.raises(InferenceServerException, match="takes 3"):
        _client(abc).infer("abc", [inp])


class _Model:
    """What parse_infer reads of a served model: a 3-feature FP32 matrix model."""

    fast, n_features, accepts_missing, input_dtype = True, 3, False, np.dtype(np.float32)

    @staticmethod
    def input_tensors():
        return [{"name": "input-0", "datatype": "FP32", "shape": [-1, 3]}]

    @staticmethod
    def output_tensors():
        return [{"name": "predict", "datatype": "INT64", "shape": [-1]}]


def _outcome(body: bytes):
    try:
        return oip.parse_infer(body, _Model).data
    except RequestError as exc:
        return exc.message


@pytest.mark.parametrize(
    "data,datatype,extra",
    [
        (np.arange(3000.0).tolist(), "FP32", {}),
        (np.linspace(-1, 1, 3000).tolist(), "FP64", {"id": "x[1]"}),
        (list(range(3000)), "FP32", {"outputs": [{"name": "predict"}]}),
        (np.arange(3000.0).reshape(1000, 3).tolist(), "FP32", {}),
        ([1e39] + [0.0] * 2999, "FP32", {}),
        ([70000.0] + [0.0] * 2999, "FP16", {}),
        ([None] + [0.0] * 2999, "FP32", {}),
        (["1"] + [0.0] * 2999, "FP32", {}),
        ([0.5] * 2999, "FP32", {}),
        ([[0.5, 1.0, 2.0]] * 999 + [[1.0, 2.0]], "FP32", {}),
        (np.arange(3000.0).tolist(), "FP32", {"parameters": {"list": [1, [2]]}}),
    ],
)
def test_the_fast_json_parse_reads_as_the_exact_one(data, datatype, extra, monkeypatch):
    body = json.dumps(
        {"inputs": [{"name": "input-0", "shape": [1000, 3], "datatype": datatype, "data": data}], **extra}
    ).encode()
    fast = _outcome(body)
    monkeypatch.setattr(oip, "_fast_json", lambda body: None)
    exact = _outcome(body)
    if isinstance(exact, str):
        assert fast == exact
    else:
        assert isinstance(fast, np.ndarray) and fast.dtype == exact.dtype and np.array_equal(fast, exact)


def test_the_fast_json_parse_takes_flat_float_data_and_leaves_the_rest():
    def body(data, **extra):
        tensor = {"name": "input-0", "shape": [1000, 3], "datatype": "FP32", "data": data}
        return json.dumps({"inputs": [tensor], **extra}).encode()

    flat = np.arange(3000.0).tolist()
    taken = oip._fast_json(body(flat, outputs=[{"name": "predict"}]))
    assert taken is not None and isinstance(taken["inputs"][0]["data"], np.ndarray)
    assert oip._fast_json(body(flat, id="a[b")) is None  # a '[' in a string: the count of arrays is off
    assert oip._fast_json(body(np.arange(3000.0).reshape(1000, 3).tolist())) is None  # nested
    assert oip._fast_json(body([None, *flat[1:]])) is None
