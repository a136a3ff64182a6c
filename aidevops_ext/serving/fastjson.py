"""A faster parse for the common big body: rows of plain JSON numbers, straight into a float64 array.

`orjson.loads` + `np.array` builds a Python float per value; simdjson
parses the document in C and `as_buffer` copies the numbers of the rows into one buffer. Anything
unusual - a boolean, null, string or object among the numbers, ragged or deeper nesting, duplicate
keys, odd envelope keys, parse errors - returns None, and the caller takes the orjson path, which gives
the exact error. So this path only ever accepts documents the orjson path would accept the same way.

`as_buffer` flattens nested arrays; a row like `[1, [2]]` would pass the length checks, so the number
of '[' bytes in the whole body must be exactly the structural count (one per row, one for the list,
one per other known array): any nested array, or '[' inside a string, fails the count and falls back.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from .validation import is_column_name

simdjson: Any
try:  # optional: without it every body takes the orjson path
    import simdjson
except ImportError:  # pragma: no cover - declared as a dependency
    simdjson = None

MIN_BYTES = 4096  # below this the orjson path is as fast
_local = threading.local()
_OPEN = ord("[")
_SPLIT_KEYS = {"data", "columns", "index"}


class FastRows:
    """What the fast path found: the envelope key, the rows as float64, params, and dataframe_split extras."""

    __slots__ = ("key", "rows", "params", "columns", "n_index")

    def __init__(
        self, key: str, rows: np.ndarray, params: dict | None, columns: list | None, n_index: int | None
    ) -> None:
        self.key, self.rows, self.params, self.columns, self.n_index = key, rows, params, columns, n_index


def _parser() -> Any:
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = simdjson.Parser()
    return parser


def parse_mlflow(body: bytes) -> FastRows | None:
    """Rows of an `inputs` / `instances` / `dataframe_split` body of plain numbers, or None (use the orjson path)."""
    if simdjson is None or len(body) < MIN_BYTES:
        return None
    try:
        return _parse(body)
    except Exception:  # noqa: BLE001 - any surprise: the exact path decides
        return None


def _parse(body: bytes) -> FastRows | None:
    doc = _parser().parse(body)
    if not isinstance(doc, simdjson.Object):
        return None
    keys = list(doc.keys())
    if len(set(keys)) != len(keys):
        return None
    formats = [k for k in keys if k in ("inputs", "instances", "dataframe_split", "dataframe_records")]
    if len(formats) != 1 or formats[0] == "dataframe_records":
        return None
    key = formats[0]
    params = None
    if "params" in keys:
        value = doc["params"]
        if not isinstance(value, simdjson.Object):
            return None
        params = value.as_dict()
    arrays = 1
    columns = index = None
    if key == "dataframe_split":
        split = doc[key]
        if not isinstance(split, simdjson.Object):
            return None
        skeys = list(split.keys())
        if len(set(skeys)) != len(skeys) or not set(skeys) <= _SPLIT_KEYS or "data" not in skeys:
            return None
        if "columns" in skeys:
            cols = split["columns"]
            if not isinstance(cols, simdjson.Array):
                return None
            columns = cols.as_list()
            if not all(is_column_name(c) for c in columns):
                return None
            arrays += 1
        if "index" in skeys:
            idx = split["index"]
            if not isinstance(idx, simdjson.Array):
                return None
            index = len(idx)
            arrays += 1
        rows = split["data"]
    else:
        rows = doc[key]
    if not isinstance(rows, simdjson.Array):
        return None
    n = len(rows)
    if n == 0:
        return None
    first = rows[0]
    if not isinstance(first, simdjson.Array):
        return None
    width = len(first)
    if width == 0 or any(len(r) != width for r in rows):  # len() of a number raises: caught above
        return None
    values = np.frombuffer(rows.as_buffer(of_type="d"), dtype=np.float64)
    if values.size != n * width:
        return None
    # structural '[' count: rows + the list + other arrays; a nested array or a '[' in a string breaks it
    if np.count_nonzero(np.frombuffer(body, dtype=np.uint8) == _OPEN) != n + arrays + json_arrays(params):
        return None
    return FastRows(key, values.reshape(n, width), params, columns, index)


def json_arrays(value: Any) -> int:
    """The JSON arrays in `value` (lists, recursively): the '[' bytes it was parsed from, strings aside."""
    if isinstance(value, dict):
        return sum(json_arrays(v) for v in value.values())
    if isinstance(value, list):
        return 1 + sum(json_arrays(v) for v in value)
    return 0
