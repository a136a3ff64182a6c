"""The dataframe_split shortcut builds exactly MLflow's DataFrame, and leaves every other body to MLflow.

aidevops_ext/serving/protocols/splitframe.py skips MLflow's generic parser for plain dataframe_split bodies;
whatever it builds must equal `infer_and_parse_data`'s frame (values, dtypes, column order, index), since
the model's schema enforcement and the model itself see it. Real signature of a registered pipeline.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from aidevops_ext.serving.loader import load_model_uri
from aidevops_ext.serving.protocols import mlflow as mlflow_proto
from aidevops_ext.serving.protocols.splitframe import split_frame
from tests.serving.tabular import COLUMNS, NAME, register


@pytest.fixture(scope="module")
def tabular(reg):
    return load_model_uri(f"models:/{NAME}/{register(reg)}", reg.ws, allow_pickle=True)


def _mlflows(body: bytes, model) -> pd.DataFrame:
    from mlflow.pyfunc.scoring_server import infer_and_parse_data

    return infer_and_parse_data(json.loads(body), model.input_schema)


def _bodies(seed: int = 0, n: int = 150) -> list[bytes]:
    """Rows with nulls anywhere (whole null columns too), ints in double columns, columns in any order, or one
    optional column left out."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        columns = list(rng.permutation(COLUMNS)) if i % 3 else list(COLUMNS)
        if i % 7 == 0:
            columns = [c for c in columns if c != "income"]
        rows = []
        for _ in range(int(rng.integers(1, 6))):
            row = []
            for c in columns:
                if rng.random() < (0.9 if i % 11 == 0 else 0.2):
                    row.append(None)
                elif c in ("income", "age"):
                    row.append(int(rng.integers(-5, 90)) if rng.random() < 0.3 else float(rng.normal(50, 20)))
                else:
                    row.append(str(rng.choice(["paris", "lyon", "nice", "", "tokyo", "l'isle", "é"])))
            rows.append(row)
        out.append(json.dumps({"dataframe_split": {"columns": columns, "data": rows}}).encode())
    return out


def test_the_shortcut_builds_mlflows_frame_for_plain_split_bodies(tabular):
    assert tabular.split_kinds == {"income": "double", "age": "double", "city": "string", "plan": "string"}
    for body in _bodies():
        ours = split_frame(body, tabular.split_kinds)
        assert ours is not None, body
        pd.testing.assert_frame_equal(ours, _mlflows(body, tabular), check_exact=True, obj=body.decode())


def test_a_whole_null_text_column_stays_object_none_as_pandas_infers_it(tabular):
    body = json.dumps({"dataframe_split": {"columns": COLUMNS, "data": [[1.0, 2.0, None, "pro"]]}}).encode()
    ours = split_frame(body, tabular.split_kinds)
    assert ours["city"].dtype == object and ours["city"].tolist() == [None]
    pd.testing.assert_frame_equal(ours, _mlflows(body, tabular), check_exact=True)


ROW = [48.5, 30.0, "paris", "pro"]
LEFT_TO_MLFLOW = {
    "params": {"dataframe_split": {"columns": COLUMNS, "data": [ROW]}, "params": {"a": 1}},
    "index": {"dataframe_split": {"columns": COLUMNS, "data": [ROW], "index": [7]}},
    "no columns": {"dataframe_split": {"data": [ROW]}},
    "a boolean in a double column": {"dataframe_split": {"columns": COLUMNS, "data": [[True, 30.0, "paris", "pro"]]}},
    "a number in a string column": {"dataframe_split": {"columns": COLUMNS, "data": [[48.5, 30.0, 5, "pro"]]}},
    "a numeric string in a double column": {
        "dataframe_split": {"columns": COLUMNS, "data": [["5", 30.0, "paris", "pro"]]}
    },
    "a list in a cell": {"dataframe_split": {"columns": COLUMNS, "data": [[[1.0], 30.0, "paris", "pro"]]}},
    "an extra column": {"dataframe_split": {"columns": COLUMNS + ["x"], "data": [ROW + [1.0]]}},
    "a column twice": {"dataframe_split": {"columns": COLUMNS[:3] + ["city"], "data": [ROW]}},
    "a short row": {"dataframe_split": {"columns": COLUMNS, "data": [ROW[:3]]}},
    "no rows": {"dataframe_split": {"columns": COLUMNS, "data": []}},
    "records": {"dataframe_records": [dict(zip(COLUMNS, ROW))]},
}


@pytest.mark.parametrize("name", sorted(LEFT_TO_MLFLOW))
def test_other_bodies_are_left_to_mlflows_parser(tabular, name):
    assert split_frame(json.dumps(LEFT_TO_MLFLOW[name]).encode(), tabular.split_kinds) is None


def test_nan_literals_and_leading_space_are_left_to_mlflows_parser(tabular):
    nan = b'{"dataframe_split": {"columns": ["income", "age", "city", "plan"], "data": [[NaN, 30.0, "paris", "pro"]]}}'
    assert split_frame(nan, tabular.split_kinds) is None
    assert (
        split_frame(
            b" " + json.dumps({"dataframe_split": {"columns": COLUMNS, "data": [ROW]}}).encode(), tabular.split_kinds
        )
        is None
    )
    frame, params = mlflow_proto.parse(nan, mlflow_proto.JSON, tabular)  # MLflow's parser takes it
    assert params is None and np.isnan(frame["income"].iloc[0])
