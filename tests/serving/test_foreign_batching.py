"""Merged predictions of a foreign scikit-learn pipeline: every request gets what it would get alone.

The prediction thread (aidevops_ext/serving/batching.py) predicts the requests that queued together in one
call when they have the same columns and dtypes; a bad request among them must still get its own error,
and requests with other columns, or params, go alone. Real registered model, real MLflow parsing.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import numpy as np
import pytest

from aidevops_ext.serving.batching import PredictThread, predict_jobs, row_wise
from aidevops_ext.serving.errors import RequestError
from aidevops_ext.serving.loader import load_model_uri
from aidevops_ext.serving.protocols import mlflow as mlflow_proto
from tests.serving.conftest import start_server, stop_server
from tests.serving.tabular import COLUMNS, NAME, register

BODIES = [
    {"dataframe_split": {"columns": COLUMNS, "data": [[48.5, 30.0, "paris", "pro"]]}},
    {"dataframe_split": {"columns": COLUMNS, "data": [[None, 45.0, "nice", "basic"], [61.0, 20.0, "lyon", "pro"]]}},
    {"dataframe_split": {"columns": COLUMNS, "data": [[70.0, None, "paris", "basic"]]}},  # null in a required column
    {"dataframe_split": {"columns": COLUMNS, "data": [[-5.0, 30.0, "paris", "basic"]]}},  # refused by RefusesNegative
    {"dataframe_split": {"columns": COLUMNS, "data": [[35.0, 60.0, "tokyo", "pro"]]}},  # a category never trained on
    {"dataframe_split": {"columns": COLUMNS[::-1], "data": [["pro", "nice", 40.0, 52.0]]}},  # other column order
    {"dataframe_records": [{"income": 52.0, "age": 33.0, "city": "lyon", "plan": "basic"}]},
    {"inputs": {"income": [58.0], "age": [41.0], "city": ["nice"], "plan": ["pro"]}},
]


class Counting:
    """The real model, counting its predict calls (to see that requests did merge)."""

    def __init__(self, model) -> None:
        self.model, self.calls, self.name, self.version = model, 0, model.name, model.version

    def predict(self, data, params=None):
        self.calls += 1
        return self.model.predict(data, params)


class RefusesNegative(Counting):
    """The real model, refusing a negative income as a model with its own input checks would: this pipeline
    accepts every input with the same columns and dtypes, and the refusal must reach only the request that sent it."""

    def predict(self, data, params=None):
        if (data["income"] < 0).any():
            self.calls += 1
            raise RequestError("The model refused the input: income must not be negative.")
        return super().predict(data, params)


@pytest.fixture(scope="module")
def tabular(reg):
    return load_model_uri(f"models:/{NAME}/{register(reg)}", reg.ws, allow_pickle=True)


def _jobs(model) -> list:
    return [mlflow_proto.parse(json.dumps(b).encode(), mlflow_proto.JSON, model) for b in BODIES]


def _alone(model, data, params):
    try:
        return model.predict(data, params), None
    except RequestError as exc:
        return None, exc


def _same(got, want) -> bool:
    (p1, e1), (p2, e2) = got, want
    if e1 is not None or e2 is not None:
        return type(e1) is type(e2) and getattr(e1, "message", None) == getattr(e2, "message", None)
    return np.array_equal(np.asarray(p1), np.asarray(p2))


def test_a_scikit_learn_flavor_is_row_wise_and_a_python_model_is_not(tabular, reg):
    assert row_wise(tabular.pyfunc) and tabular.row_wise
    other = load_model_uri("models:/sum/1", reg.ws, allow_pickle=True)
    assert not row_wise(other.pyfunc) and not other.row_wise


def test_merged_requests_get_what_each_gets_alone_including_a_bad_ones_error(tabular):
    jobs = _jobs(tabular)
    model = RefusesNegative(tabular)
    alone = [_alone(model, d, p) for d, p in jobs]
    assert sum(e is not None for _, e in alone) == 1 and sum(e is None for _, e in alone) >= 6
    counting = RefusesNegative(tabular)
    merged = predict_jobs(counting, jobs)
    assert all(_same(g, w) for g, w in zip(merged, alone)), (merged, alone)
    # the bad request sits in the largest group: its merged call fails and that group goes one by one
    assert counting.calls > len(jobs)
    good = [j for j, (_, e) in zip(jobs, alone) if e is None]
    counting.calls = 0
    assert all(_same(g, _alone(tabular, d, p)) for g, (d, p) in zip(predict_jobs(counting, good), good))
    assert counting.calls < len(good)  # the good ones with the same columns went together


def test_requests_with_params_are_never_merged(tabular):
    data, _ = _jobs(tabular)[0]
    counting = Counting(tabular)
    predict_jobs(counting, [(data, {"predict_method": "predict"}), (data, None), (data, None)])
    assert counting.calls == 2


def test_the_prediction_thread_answers_concurrent_requests_as_alone(tabular):
    jobs = _jobs(tabular) * 4
    want = [_alone(tabular, d, p) for d, p in jobs]
    worker = PredictThread(tabular, threads=1)

    async def one(data, params):
        try:
            return await worker.predict(data, params), None
        except RequestError as exc:
            return None, exc

    async def all_at_once():
        return await asyncio.gather(*(one(d, p) for d, p in jobs))

    try:
        got = asyncio.run(all_at_once())
    finally:
        worker.stop()
    assert all(_same(g, w) for g, w in zip(got, want))
    assert worker.requests == len(jobs)


def test_a_server_answers_concurrent_requests_as_it_answers_them_one_by_one(reg):
    """Through HTTP: 8 connections at once, as the benchmark sends them, get the sequential answers."""
    server = start_server(reg, f"models:/{NAME}/{register(reg)}", "--follow-alias", "0", "--no-request-log")
    bodies = [json.dumps(b).encode() for b in BODIES if "-5.0" not in json.dumps(b)] * 6

    def answer(r: httpx.Response):
        return r.status_code, r.json().get("predictions")

    async def at_once():
        async with httpx.AsyncClient(base_url=server.url, limits=httpx.Limits(max_connections=8), timeout=60) as c:
            return await asyncio.gather(
                *(c.post("/invocations", content=b, headers={"Content-Type": "application/json"}) for b in bodies)
            )

    try:
        with httpx.Client(base_url=server.url, timeout=60) as c:
            one_by_one = [
                answer(c.post("/invocations", content=b, headers={"Content-Type": "application/json"})) for b in bodies
            ]
        concurrent = [answer(r) for r in asyncio.run(at_once())]
    finally:
        stop_server(server)
    assert all(status == 200 for status, _ in one_by_one)
    assert concurrent == one_by_one


def test_a_request_after_the_thread_stopped_is_still_answered(tabular):
    """A request that picked a model just before it was unloaded must not wait on an ended thread."""
    data, _ = _jobs(tabular)[0]
    worker = PredictThread(tabular, threads=1)

    async def before_and_after():
        first = await worker.predict(data, None)
        worker.stop()
        return first, await asyncio.wait_for(worker.predict(data, None), 60)

    first, after = asyncio.run(before_and_after())
    assert np.array_equal(first, after)
