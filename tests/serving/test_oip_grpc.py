"""The Open Inference Protocol over gRPC (`--grpc-port`) on a real server: tritonclient's gRPC client gets the
HTTP path's answers, from the same slots, counted in the same request log and metrics; refusals carry
INVALID_ARGUMENT or NOT_FOUND with one sentence."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections import Counter

import grpc
import httpx
import numpy as np
import pandas as pd
import pytest
import tritonclient.grpc as triton_grpc
from tritonclient.grpc import service_pb2
from tritonclient.utils import InferenceServerException

from aidevops_ext.errors import ConfigError
from aidevops_ext.serving.protocols import grpc_predict_v2 as pb
from tests.serving.conftest import _ENV_VARS, REPO, data, server_env, start_server, stop_server
from tests.serving.tabular import NAME as TABULAR
from tests.serving.tabular import register, table
from tests.support.servers import free_port


@pytest.fixture(scope="module")
def abc(reg):
    grpc_port = free_port()
    s = start_server(reg, "models:/abc@champion", "--follow-alias", "0", "--grpc-port", str(grpc_port))
    s.grpc_port = grpc_port
    yield s
    stop_server(s)


@pytest.fixture(scope="module")
def tabular(reg):
    grpc_port = free_port()
    s = start_server(reg, f"models:/{TABULAR}/{register(reg)}", "--follow-alias", "0", "--grpc-port", str(grpc_port))
    s.grpc_port = grpc_port
    yield s
    stop_server(s)


def _client(server) -> triton_grpc.InferenceServerClient:
    return triton_grpc.InferenceServerClient(url=f"127.0.0.1:{server.grpc_port}")


def _json_outputs(server, model: str, inputs: list[dict]) -> dict[str, np.ndarray]:
    r = httpx.post(f"{server.url}/v2/models/{model}/infer", json={"inputs": inputs}, timeout=60)
    assert r.status_code == 200, r.text
    return {o["name"]: np.array(o["data"]).reshape(o["shape"]) for o in r.json()["outputs"]}


def _fp32(X: np.ndarray) -> triton_grpc.InferInput:
    inp = triton_grpc.InferInput("input-0", list(X.shape), "FP32")
    inp.set_data_from_numpy(X)  # tritonclient sends raw_input_contents
    return inp


def test_health_and_metadata(abc):
    client = _client(abc)
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("abc")
    assert client.is_model_ready("abc", "1")
    meta = client.get_server_metadata()
    assert meta.name == "aidevops" and list(meta.extensions) == ["binary_tensor_data"]
    model = client.get_model_metadata("abc", as_json=True)
    http_meta = httpx.get(abc.url + "/v2/models/abc").json()
    assert model["name"] == "abc" and model["versions"] == ["1"] and model["platform"] == "aidevops"
    assert [
        {"name": t["name"], "datatype": t["datatype"], "shape": [int(s) for s in t["shape"]]} for t in model["inputs"]
    ] == http_meta["inputs"]
    assert [t["name"] for t in model["outputs"]] == ["predict", "predict_proba"]


@pytest.mark.parametrize("rows", [1, 1000])
def test_infer_equals_the_http_answer(abc, rows):
    X, _ = data(11, rows)
    result = _client(abc).infer("abc", [_fp32(X)], request_id="grpc-1")
    expected = _json_outputs(
        abc, "abc", [{"name": "input-0", "shape": list(X.shape), "datatype": "FP32", "data": X.ravel().tolist()}]
    )
    assert result.get_response().id == "grpc-1" and result.get_response().model_version == "1"
    predict, proba = result.as_numpy("predict"), result.as_numpy("predict_proba")
    assert predict.dtype == np.int64 and predict.shape == (rows,)
    np.testing.assert_array_equal(predict, expected["predict"])
    assert proba.dtype == np.float32 and proba.shape == (rows, 3)
    np.testing.assert_array_equal(proba, expected["predict_proba"].astype(np.float32))


def test_int64_input_and_one_requested_output(abc):
    X = np.array([[1, 2, 10], [0, -1, 12]], dtype=np.int64)
    inp = triton_grpc.InferInput("input-0", [2, 3], "INT64")
    inp.set_data_from_numpy(X)
    result = _client(abc).infer("abc", [inp], outputs=[triton_grpc.InferRequestedOutput("predict")])
    assert [o.name for o in result.get_response().outputs] == ["predict"]
    expected = _json_outputs(
        abc, "abc", [{"name": "input-0", "shape": [2, 3], "datatype": "INT64", "data": X.tolist()}]
    )
    np.testing.assert_array_equal(result.as_numpy("predict"), expected["predict"])


def test_typed_contents_as_kserve_clients_send_them(abc):
    """Values in InferTensorContents (not raw), through our own message classes: the same answers."""
    X, _ = data(12, 4)
    request = pb.ModelInferRequest(model_name="abc", id="typed")
    tensor = request.inputs.add(name="input-0", datatype="FP32", shape=[4, 3])
    tensor.contents.fp32_contents.extend(X.ravel().tolist())
    with grpc.insecure_channel(f"127.0.0.1:{abc.grpc_port}") as channel:
        call = channel.unary_unary(
            f"/{pb.SERVICE}/ModelInfer",
            request_serializer=pb.ModelInferRequest.SerializeToString,
            response_deserializer=pb.ModelInferResponse.FromString,
        )
        response, info = call.with_call(request, timeout=30)
    assert response.id == "typed" and [o.name for o in response.outputs] == ["predict", "predict_proba"]
    predict = np.frombuffer(response.raw_output_contents[0], dtype="<i8")
    expected = _json_outputs(abc, "abc", [{"name": "input-0", "shape": [4, 3], "datatype": "FP32", "data": X.tolist()}])
    np.testing.assert_array_equal(predict, expected["predict"])
    trailing = dict(info.trailing_metadata())
    assert trailing["x-model-version"] == "1" and trailing["x-request-id"]


@pytest.mark.parametrize("rows", [1, 1000])
def test_a_tabular_pyfunc_takes_float_and_string_columns(tabular, rows):
    frame = table(5, rows, missing=0.0)
    inputs, json_inputs = [], []
    for column in frame.columns:
        kind = "FP64" if pd.api.types.is_numeric_dtype(frame[column]) else "BYTES"
        values = frame[column].to_numpy(dtype=np.float64 if kind == "FP64" else object)
        inp = triton_grpc.InferInput(column, [rows], kind)
        inp.set_data_from_numpy(values)
        inputs.append(inp)
        json_inputs.append({"name": column, "shape": [rows], "datatype": kind, "data": values.tolist()})
    result = triton_grpc.InferenceServerClient(url=f"127.0.0.1:{tabular.grpc_port}").infer(TABULAR, inputs)
    expected = _json_outputs(tabular, TABULAR, json_inputs)
    np.testing.assert_array_equal(result.as_numpy("predict"), expected["predict"])


def _refused(server, inputs, model: str = "abc", version: str = "") -> InferenceServerException:
    with pytest.raises(InferenceServerException) as info:
        _client(server).infer(model, inputs, model_version=version)
    message = info.value.message()
    assert message.endswith(".") and ". " not in message, message  # one sentence
    return info.value


def test_bad_input_is_invalid_argument(abc):
    short = triton_grpc.InferInput("input-0", [1, 2], "FP32")
    short.set_data_from_numpy(np.ones((1, 2), np.float32))
    exc = _refused(abc, [short])
    assert exc.status() == "StatusCode.INVALID_ARGUMENT" and "takes 3" in exc.message()
    nan = _fp32(np.full((1, 3), np.nan, np.float32))
    assert _refused(abc, [nan]).status() == "StatusCode.INVALID_ARGUMENT"
    strings = triton_grpc.InferInput("input-0", [1, 3], "BYTES")
    strings.set_data_from_numpy(np.array([["a", "b", "c"]], dtype=object))
    assert "BYTES" in _refused(abc, [strings]).message()


def test_wrong_raw_sizes_are_invalid_argument(abc):
    request = service_pb2.ModelInferRequest(model_name="abc")
    request.inputs.add(name="input-0", datatype="FP32", shape=[2, 3])
    request.raw_input_contents.append(np.ones(5, np.float32).tobytes())
    with grpc.insecure_channel(f"127.0.0.1:{abc.grpc_port}") as channel:
        call = channel.unary_unary(
            f"/{pb.SERVICE}/ModelInfer",
            request_serializer=service_pb2.ModelInferRequest.SerializeToString,
            response_deserializer=service_pb2.ModelInferResponse.FromString,
        )
        with pytest.raises(grpc.RpcError) as info:
            call(request, timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "needs 24" in info.value.details()


def test_unknown_model_or_version_is_not_found(abc):
    X = np.ones((1, 3), np.float32)
    assert _refused(abc, [_fp32(X)], model="nope").status() == "StatusCode.NOT_FOUND"
    assert _refused(abc, [_fp32(X)], version="9").status() == "StatusCode.NOT_FOUND"
    with pytest.raises(InferenceServerException) as info:
        _client(abc).get_model_metadata("nope")
    assert info.value.status() == "StatusCode.NOT_FOUND"


def _logged(db, since: float) -> list[tuple]:
    """(status, rows, error) of the gRPC requests logged at or after `since`."""
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT status, n_rows, error FROM request_log WHERE protocol = 'grpc' AND ts >= ?", (since,)
        ).fetchall()


def _metric(server, code: int) -> float:
    needle = f'aidevops_requests_total{{alias="champion",code="{code}",model="abc",protocol="grpc",version="1"}} '
    for line in httpx.get(server.url + "/metrics").text.splitlines():
        if line.startswith(needle):
            return float(line.split()[-1])
    return 0.0


def test_grpc_requests_are_logged_and_counted(abc, reg):
    db = reg.root / ".aidevops" / "deploy.db"
    since, ok_before, bad_before = time.time(), _metric(abc, 200), _metric(abc, 400)
    X, _ = data(13, 3)
    for _ in range(3):
        _client(abc).infer("abc", [_fp32(X)])
    short = _fp32(np.ones((1, 2), np.float32))
    with pytest.raises(InferenceServerException):
        _client(abc).infer("abc", [short])
    assert _metric(abc, 200) == ok_before + 3 and _metric(abc, 400) == bad_before + 1
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(_logged(db, since)) < 4:
        time.sleep(0.1)
    time.sleep(1.0)  # a fifth row, if one were wrongly written, would have arrived by now
    rows = _logged(db, since)
    assert sorted(r[0] for r in rows) == [200, 200, 200, 400]
    assert [r[1] for r in rows if r[0] == 200] == [3, 3, 3] and any("takes 3" in (r[2] or "") for r in rows)


@pytest.mark.parametrize(
    "grpc_port,needle", [("in use", "in use"), ("70000", "between 1 and 65535"), ("same", "HTTP port")]
)
def test_a_grpc_port_that_cannot_serve_is_refused_in_one_sentence(reg, abc, grpc_port, needle):
    port = free_port()
    given = {"in use": str(abc.grpc_port), "same": str(port)}.get(grpc_port, grpc_port)
    proc = subprocess.run(
        [sys.executable, "-m", "aidevops_ext.serving", "models:/abc@champion", "--port", str(port)]
        + ["--grpc-port", given],
        cwd=REPO,
        env=server_env(reg),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    error = proc.stderr.strip().splitlines()[-1]
    assert error.startswith("error: ") and needle in error and "--grpc-port" in error, proc.stderr[-500:]


def test_grpc_port_is_for_local_deployments():
    from click.testing import CliRunner

    from aidevops_ext.cli import main

    result = CliRunner().invoke(main, ["deploy", "abc@champion", "--target", "kubernetes", "--grpc-port", "9000"])
    assert result.exit_code == 2 and "--grpc-port is for local deployments" in result.output
    for command in ("serve", "deploy"):
        assert "--grpc-port" in CliRunner().invoke(main, [command, "--help"]).output


def test_our_messages_have_the_field_numbers_of_tritonclients(abc):
    """KServe's proto is a subset of Triton's: each of our fields has Triton's number and type."""
    for name in ("ModelInferRequest", "ModelInferResponse", "ModelMetadataResponse", "InferTensorContents"):
        ours = pb.message(name).DESCRIPTOR
        theirs = getattr(service_pb2, name).DESCRIPTOR
        for nested in [ours, *ours.nested_types]:
            other = theirs if nested is ours else theirs.nested_types_by_name[nested.name]
            for field in nested.fields:
                match = other.fields_by_name[field.name]
                assert (field.number, field.type) == (match.number, match.type), (nested.name, field.name)


def test_a_deployment_serves_grpc_from_its_slots_canary_included(reg, monkeypatch):
    from aidevops_ext.deploy import manager

    for var in _ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AIDEVOPS_HOME", str(reg.root))
    monkeypatch.setenv("AIDEVOPS_DEPLOY_WATCH_PID", str(os.getpid()))  # the supervisor stops if this session dies
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    monkeypatch.chdir(reg.root)
    grpc_port, name = free_port(), "abc-grpc"
    try:
        dep = manager.deploy(reg.ws, "abc@champion", name=name, grpc_port=grpc_port).deployment
        assert manager.deployment_grpc_port(dep) == grpc_port
        client = triton_grpc.InferenceServerClient(url=f"127.0.0.1:{grpc_port}")
        X, _ = data(14, 2)
        assert client.infer("abc", [_fp32(X)]).get_response().model_version == "1"
        manager.canary(reg.ws, name, "2", share=0.5)
        versions = Counter(client.infer("abc", [_fp32(X)]).get_response().model_version for _ in range(60))
        assert set(versions) == {"1", "2"}, versions
        with pytest.raises(ConfigError, match="--grpc-port"):
            manager.deploy(reg.ws, "abc/2", name=name, grpc_port=free_port())
        manager.undeploy(reg.ws, name, reason="deployed again below")
        again = manager.deploy(reg.ws, "abc@champion", name=name).deployment  # no --grpc-port: it keeps its own
        assert manager.deployment_grpc_port(again) == grpc_port
        assert client.infer("abc", [_fp32(X)]).get_response().model_version == "1"
        from click.testing import CliRunner

        from aidevops_ext.cli import main

        shown = CliRunner().invoke(main, ["deployments", name]).output
        assert f"gRPC      127.0.0.1:{grpc_port} (Open Inference Protocol)" in shown, shown
    finally:
        manager.undeploy(reg.ws, name, reason="test finished")
