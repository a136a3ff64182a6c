"""MLflow's scoring protocol: MLflow's own client and the payloads of MLflow's documentation, on a real server."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.serving.conftest import FEATURES, data

# The payload examples of MLflow's "Deploy MLflow Model as a Local Inference Server" documentation,
# for a model taking columns a, b, c.
DOCS_JSON = {
    "dataframe_split": {"dataframe_split": {"columns": ["a", "b", "c"], "data": [[1, 2, 3], [4, 5, 6]]}},
    "dataframe_records": {"dataframe_records": [{"a": 1, "b": 2, "c": 3}, {"a": 4, "b": 5, "c": 6}]},
    "instances": {"instances": [[1, 2, 3], [4, 5, 6]]},
    "inputs": {"inputs": [[1, 2, 3], [4, 5, 6]]},
    "inputs_columns": {"inputs": {"a": [1, 4], "b": [2, 5], "c": [3, 6]}},
    "params": {"inputs": [[1, 2, 3], [4, 5, 6]], "params": {"max_answer_len": 10}},
}
DOCS_CSV = "a,b,c\n1,2,3\n4,5,6\n"
ROWS = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float32)


def test_mlflow_scoring_client_against_our_server(server, reg):
    """MLflow's ScoringServerClient pings, reads the version and invokes with DataFrames and arrays."""
    from mlflow.pyfunc.scoring_server.client import ScoringServerClient

    client = ScoringServerClient("127.0.0.1", server.port)
    client.wait_server_ready(timeout=10)
    client.ping()
    assert client.get_version()
    X, _ = data(5, 50)
    expected = reg.champion.predict(X).tolist()
    frame = pd.DataFrame(X, columns=FEATURES)
    assert client.invoke(frame).get_predictions(predictions_format="ndarray").tolist() == expected
    assert client.invoke(X).get_predictions(predictions_format="ndarray").tolist() == expected
    # MLflow's client sends params next to the data; our models ignore them, as MLflow does without a params schema
    assert (
        client.invoke(X, params={"temperature": 0.5}).get_predictions(predictions_format="ndarray").tolist() == expected
    )


def test_mlflow_deployments_predictions_response(server, reg):
    """The body parses as MLflow's PredictionsResponse, as mlflow.deployments clients read it."""
    import httpx
    from mlflow.deployments import PredictionsResponse

    r = httpx.post(server.url + "/invocations", json=DOCS_JSON["inputs"])
    resp = PredictionsResponse.from_json(r.text)
    assert resp.get_predictions(predictions_format="ndarray").tolist() == reg.champion.predict(ROWS).tolist()
    assert resp["request_id"] == r.headers["x-request-id"]


@pytest.mark.parametrize("name", sorted(DOCS_JSON))
def test_documented_json_payloads(http, reg, name):
    r = http.post("/invocations", json=DOCS_JSON[name])
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.json()["predictions"] == reg.champion.predict(ROWS).tolist()


def test_documented_csv_payload(http, reg):
    r = http.post("/invocations", content=DOCS_CSV, headers={"Content-Type": "text/csv"})
    assert r.status_code == 200, r.text
    assert r.json()["predictions"] == reg.champion.predict(ROWS).tolist()
    r = http.post("/invocations", content=DOCS_CSV, headers={"Content-Type": "text/csv; charset=utf-8"})
    assert r.status_code == 200


def test_same_answers_as_mlflow_pyfunc(http, reg):
    """What mlflow.pyfunc.load_model(...).predict returns for the same rows, to the digit."""
    import mlflow.pyfunc

    from aidevops_ext.registry.connection import configure

    configure(reg.ws)
    model = mlflow.pyfunc.load_model("models:/abc/1")
    X, _ = data(7, 200)
    ours = http.post(
        "/invocations", json={"dataframe_split": pd.DataFrame(X, columns=FEATURES).to_dict(orient="split")}
    )
    assert ours.status_code == 200, ours.text
    assert ours.json()["predictions"] == np.asarray(model.predict(pd.DataFrame(X, columns=FEATURES))).tolist()


def test_columns_by_name_and_records_in_any_key_order(http, reg):
    """Named columns in another order are put in the model's order (MLflow's tensor path would not)."""
    X, _ = data(8, 20)
    expected = reg.champion.predict(X).tolist()
    split = {"dataframe_split": {"columns": ["c", "a", "b"], "data": X[:, [2, 0, 1]].tolist()}}
    assert http.post("/invocations", json=split).json()["predictions"] == expected
    records = [{"b": float(r[1]), "c": float(r[2]), "a": float(r[0])} for r in X]
    assert http.post("/invocations", json={"dataframe_records": records}).json()["predictions"] == expected


def test_big_batch_takes_the_same_values_on_both_parsers(http, reg):
    """A 1000-row body (simdjson path) and the same rows with one int (orjson path) agree with predict."""
    X, _ = data(9, 1000)
    expected = reg.champion.predict(X).tolist()
    assert http.post("/invocations", json={"inputs": X.tolist()}).json()["predictions"] == expected
    rows = X.tolist()
    rows[0][0] = 0  # still a number; only the parse path differs
    X2 = X.copy()
    X2[0, 0] = 0
    assert (
        http.post("/invocations", json={"instances": rows}).json()["predictions"] == reg.champion.predict(X2).tolist()
    )


def test_foreign_pyfunc_through_mlflows_loader(reg, app_factory):
    """A column-signature pyfunc answers the documented payloads as MLflow's server would."""
    from starlette.testclient import TestClient

    with TestClient(app_factory("models:/sum@champion")) as c:
        for name in ("dataframe_split", "dataframe_records", "inputs_columns"):
            r = c.post("/invocations", json=DOCS_JSON[name])
            assert r.status_code == 200, (name, r.text)
            assert r.json()["predictions"] == [6.0, 15.0]
        r = c.post("/invocations", content=DOCS_CSV, headers={"Content-Type": "text/csv"})
        assert r.status_code == 200 and r.json()["predictions"] == [6.0, 15.0]
        r = c.post("/invocations", json={"dataframe_records": [{"a": 1, "b": True, "c": 3}]})
        assert r.status_code == 200 and r.json()["predictions"] == [
            5.0
        ]  # MLflow's schema enforcement takes true as 1.0
        r = c.post("/invocations", json={"dataframe_records": [{"a": 1, "b": "x", "c": 3}]})
        assert r.status_code == 400
        meta = c.get("/v2/models/sum").json()
        assert meta["platform"] == "mlflow_pyfunc"
        assert [t["name"] for t in meta["inputs"]] == ["a", "b", "c"]
        body = {
            "inputs": [
                {"name": n, "shape": [2], "datatype": "FP64", "data": v}
                for n, v in (("a", [1, 4]), ("b", [2, 5]), ("c", [3, 6]))
            ]
        }
        r = c.post("/v2/models/sum/infer", json=body)
        assert r.status_code == 200, r.text
        assert r.json()["outputs"][0]["data"] == [6.0, 15.0]


def test_ping_health_version(http):
    for path in ("/ping", "/health"):
        r = http.get(path)
        assert r.status_code == 200 and r.text == "\n"
    assert http.get("/version").text
