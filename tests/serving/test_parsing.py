"""Parsing units: the simdjson fast path agrees with the exact orjson path, or steps aside."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aidevops_ext.serving import fastjson
from aidevops_ext.serving.errors import RequestError
from aidevops_ext.serving.protocols import mlflow as mlflow_proto
from aidevops_ext.serving.validation import has_bool_token, rows_to_matrix

PAD = " " * fastjson.MIN_BYTES  # whitespace is valid JSON and pushes small bodies onto the fast path


def _exact(body: bytes):
    obj = json.loads(body)
    key = next(k for k in ("inputs", "instances", "dataframe_split") if k in obj)
    rows = obj[key]["data"] if key == "dataframe_split" else obj[key]
    return rows_to_matrix(rows, None, maybe_bools=has_bool_token(body), dtype=np.float64)


finite = st.floats(min_value=-1e30, max_value=1e30, allow_nan=False) | st.integers(-(2**53), 2**53)


@settings(max_examples=200, deadline=None)
@given(
    rows=st.integers(1, 6).flatmap(
        lambda w: st.lists(st.lists(finite, min_size=w, max_size=w), min_size=1, max_size=8)
    ),
    key=st.sampled_from(["inputs", "instances", "dataframe_split"]),
)
def test_fast_path_equals_exact_path(rows, key):
    payload = {key: {"data": rows} if key == "dataframe_split" else rows}
    body = (json.dumps(payload) + PAD).encode()
    fast = fastjson.parse_mlflow(body)
    assert fast is not None and fast.key == key
    np.testing.assert_array_equal(fast.rows, _exact(body))


@pytest.mark.parametrize(
    "payload",
    [
        {"inputs": [[1.0, [2.0]]]},  # nested: as_buffer would flatten it
        {"inputs": [[1.0, []], [2.0, 3.0]]},
        {"inputs": [[1.0, True]]},
        {"inputs": [[1.0, None]]},
        {"inputs": [[1.0, "2"]]},
        {"inputs": [[1.0, 2.0], [3.0]]},
        {"inputs": [1.0, 2.0]},
        {"inputs": {"x": [[1.0]]}},
        {"inputs": [[1.0]], "instances": [[1.0]]},
        {"dataframe_split": {"data": [[1.0]], "extra": 1}},
        {"dataframe_split": {"data": [[1.0]], "columns": ["a[", "b"]}},
        {"dataframe_records": [{"a": 1.0}]},
        {"inputs": [[1.0]], "params": "x"},
        [[1.0]],
    ],
)
def test_fast_path_steps_aside_for_anything_unusual(payload):
    assert fastjson.parse_mlflow((json.dumps(payload) + PAD).encode()) is None


def test_fast_path_steps_aside_for_bad_documents():
    for body in (
        b'{"inputs": [[1e999]]}' + PAD.encode(),
        b'{"inputs": [[NaN]]}' + PAD.encode(),
        ('{"inputs": [[1]]}' + PAD).encode("utf-16"),
        b'{"inputs": [[1]], "inputs": [[2]]}' + PAD.encode(),
        b'{"inputs": ' + b"[" * 3000 + b"]" * 3000 + b"}" + PAD.encode(),
    ):
        assert fastjson.parse_mlflow(body) is None


def test_duplicate_keys_take_the_last_as_mlflow_does():
    body = b'{"inputs": [[1, 2, 3]], "inputs": [[4, 5, 6]]}'
    model = type(
        "M",
        (),
        {
            "fast": True,
            "n_features": 3,
            "feature_names": None,
            "accepts_missing": False,
            "input_dtype": np.dtype(np.float32),
        },
    )()
    X, _ = mlflow_proto.parse(body + PAD.encode(), mlflow_proto.JSON, model)
    assert X.tolist() == [[4, 5, 6]]


@pytest.mark.parametrize(
    "ctype,kind",
    [
        (b"application/json", "json"),
        (b"text/csv", "csv"),
        (b"Application/JSON; charset=UTF-8", "json"),
        (b'text/csv; charset="utf-8"', "csv"),
    ],
)
def test_content_kind(ctype, kind):
    assert mlflow_proto.content_kind(ctype) == kind


def test_bool_token_scan_has_no_false_negatives():
    for body in (b"[true]", b"[false]", b'{"k": true}', b'{"inputs": [[1,true]]}', b"[ false ]"):
        assert has_bool_token(body)
    many_u = b'{"u": "' + b"u" * 500 + b'", "x": [1, true]}'
    assert has_bool_token(many_u)
    assert not has_bool_token(b'{"inputs": [[1.5, 2e10, -3]]}')
    with pytest.raises(RequestError, match="boolean"):
        rows_to_matrix([[1.0, True]], 2, maybe_bools=True)
