"""The DataFrame MLflow's parser makes of a plain `dataframe_split` body, built column by column.

Why: for a foreign model with a column signature, MLflow's `infer_and_parse_data` builds a pandas frame
from row lists, then casts each column, which dominates a single-row request; building the same frame
from columns is several times cheaper. Only the common, unambiguous body takes this path:
`{"dataframe_split": {"columns": [...], "data": [[...], ...]}}` with no other key, every named column in
the signature as `double` or `string`, each once, every row as long as `columns`, doubles given as JSON
numbers or null and strings as JSON strings or null. Anything else (params, index, NaN literals,
booleans, numbers in string columns, extra columns, ...) returns None and goes through MLflow's own
parser, which judges it. The frame is MLflow's exactly, dtypes included: a double column is float64
(null is NaN), a string column pandas' inferred string dtype (null is NaN), or object holding None when
every value is null, as pandas infers it there (tests/serving/test_foreign_splitframe.py compares both).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pandas as pd

DOUBLE, STRING = "double", "string"
_STRING_DTYPE = pd.Series(["a", None]).dtype  # what pandas infers for text with gaps ("str" in pandas 3)
_NUMBER = (int, float)


def column_kinds(schema: Any) -> dict[str, str]:
    """{column: "double" | "string"} for the signature's columns this path can build (others are left out)."""
    from mlflow.types.schema import DataType  # noqa: PLC0415 - foreign models only

    kinds = {}
    for col in getattr(schema, "inputs", None) or []:
        if col.name is not None and isinstance(col.type, DataType) and col.type.name in (DOUBLE, STRING):
            kinds[col.name] = col.type.name
    return kinds


def split_frame(body: bytes, kinds: dict[str, str]) -> pd.DataFrame | None:
    """MLflow's DataFrame for a plain dataframe_split body, or None when MLflow's parser must decide."""
    if not kinds or not body.startswith(b'{"dataframe_split"'):
        return None
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if len(obj) != 1:
        return None
    split = obj["dataframe_split"]
    if type(split) is not dict or len(split) != 2 or "columns" not in split or "data" not in split:
        return None
    columns, rows = split["columns"], split["data"]
    if type(columns) is not list or type(rows) is not list or not rows or not columns:
        return None
    width = len(columns)
    if len(set(columns) if all(type(c) is str for c in columns) else ()) != width:
        return None
    for row in rows:
        if type(row) is not list or len(row) != width:
            return None
    out: dict[str, Any] = {}
    for values, name in zip(zip(*rows), columns):
        kind = kinds.get(name)
        if kind == DOUBLE:
            if not all(v is None or (type(v) in _NUMBER) for v in values):
                return None
            out[name] = np.array(values, dtype=np.float64)  # None -> NaN, ints -> floats, as astype(float64)
        elif kind == STRING:
            texts = sum(type(v) is str for v in values)
            if texts + sum(v is None for v in values) != len(values):
                return None
            out[name] = pd.array(values, dtype=_STRING_DTYPE) if texts else np.array(values, dtype=object)
        else:
            return None
    return pd.DataFrame(out, copy=False)
