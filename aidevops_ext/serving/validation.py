"""Input validation at the boundary: bytes -> JSON -> a checked 2-D float array, or a RequestError.

The fast path is `orjson.loads` + `np.array` on the nested list, then dtype, shape and range checks on
the array: NumPy does the per-element work in C. Two things the array cannot show are caught apart:
JSON booleans mixed into numbers (NumPy turns `true` into 1.0) are found by a memchr scan of the raw
body, and values NumPy could not type (None, strings, huge integers) send the rows to a slower walk
that names the first offending cell.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

from .errors import RequestError

_MAX_SCAN_HITS = 64  # occurrences of 'u'/'l' worth checking one by one before a full substring search


# --------------------------------------------------------------------------- JSON


def decode_json(body: bytes) -> Any:
    """Parse a UTF-8 JSON body (RFC 8259); NaN/Infinity literals, overflowing numbers and deep nesting are 400s."""
    if not body:
        raise RequestError("The request body is empty; send a JSON document.")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestError(_json_problem(str(exc))) from None


def _json_problem(detail: str) -> str:
    low = detail.lower()
    if "utf-8" in low or "surrogate" in low:
        return "The request body is not valid UTF-8; JSON must be sent as UTF-8 (RFC 8259)."
    if "depth" in low or "recursion" in low:
        return "The JSON body is nested too deeply (over 1024 levels); send flat rows of numbers."
    if "infinity" in low:
        return f"The JSON body holds a number too large for a double ({detail}); send finite numbers."
    return f"The request body is not valid JSON ({detail[:200]}); send a JSON document."


def has_bool_token(body: bytes) -> bool:
    """Whether a JSON body may contain `true` or `false` tokens (no false negatives; rare false positives).

    `b"true" in body` costs ~0.6 ms on a 1 MB body; memchr for a rare byte costs ~10 us. Numbers never
    contain 'u' or 'l', so in a body of numbers only the few keys hold them.
    """
    return _has_token(body, b"u", b"true", 2) or _has_token(body, b"l", b"false", 2)


def _has_token(body: bytes, byte: bytes, token: bytes, offset: int) -> bool:
    find = body.find
    i = find(byte)
    hits = 0
    while i != -1:
        if body[i - offset : i - offset + len(token)] == token:
            return True
        hits += 1
        if hits > _MAX_SCAN_HITS:
            return token in body
        i = find(byte, i + 1)
    return False


# --------------------------------------------------------------------------- arrays


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if value is None:
        return "null"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    if isinstance(value, (list, dict)):
        return "a nested " + ("array" if isinstance(value, list) else "object")
    return f"{type(value).__name__} {str(value)[:40]}"


def _bad_cell(what: str, r: int, c: int, value: Any) -> RequestError:
    return RequestError(f"{what} row {r}, column {c} is {_describe(value)}; every feature must be a JSON number.")


def rows_to_matrix(
    rows: Any,
    n_features: int | None,
    *,
    accepts_missing: bool = False,
    maybe_bools: bool = True,
    what: str = "Input",
    dtype: Any = np.float32,
) -> np.ndarray:
    """A (n_rows, n_features) array of `dtype` (float32 by default) from a list of rows (or one flat row)."""
    if not isinstance(rows, list):
        raise RequestError(f"{what} must be a list of rows (a list of lists of numbers), not {_describe(rows)}.")
    if not rows:
        raise RequestError(f"{what} holds no rows; send at least one row.")
    if maybe_bools:
        X = _slow_matrix(rows, what, accepts_missing)
    else:
        try:
            A = np.array(rows)
        except (ValueError, TypeError, OverflowError, RecursionError, MemoryError):
            A = None  # ragged, or mixed containers: the slow walk names the problem
        if A is None or A.dtype.kind not in "fiu" or A.ndim > 2:
            X = _slow_matrix(rows, what, accepts_missing)
        else:
            X = A.reshape(1, -1) if A.ndim == 1 else A
    return finish_matrix(X, n_features, accepts_missing=accepts_missing, dtype=dtype, what=what)


def finish_matrix(
    A: np.ndarray,
    n_features: int | None,
    *,
    accepts_missing: bool = False,
    dtype: Any = np.float32,
    what: str = "Input",
) -> np.ndarray:
    """check_matrix + to_dtype; the common case (finite floats in range) costs one abs-max reduction."""
    dt = np.dtype(dtype)
    if (
        A.ndim == 2
        and A.shape[0]
        and A.shape[1]
        and (n_features is None or A.shape[1] == n_features)
        and A.dtype.kind == "f"
        and dt.kind == "f"
    ):
        if np.abs(A).max() <= input_limit(dt):  # False for NaN too: the exact path below explains
            return A if A.dtype == dt else A.astype(dt)
    A = check_matrix(A, n_features, accepts_missing=accepts_missing, what=what)
    return to_dtype(A, dt, what)


_LIMITS = {2: 6.0e4, 4: 1.0e30, 8: 1.0e300}


def input_limit(dtype: Any) -> float:
    """Largest magnitude accepted for a float feature: well inside the dtype, so a model's own arithmetic
    (standardisation, matrix products) cannot overflow to inf on a value the boundary let through."""
    return _LIMITS.get(np.dtype(dtype).itemsize, 1.0e300)


def to_dtype(A: np.ndarray, dtype: Any, what: str = "Input") -> np.ndarray:
    """A cast to the model's dtype: floats that overflow it and non-integers for integer inputs are 400s."""
    dt = np.dtype(dtype)
    if A.dtype == dt:
        return A
    if dt.kind == "f":
        if A.size and (A.dtype.kind in "iu" or dt.itemsize <= A.dtype.itemsize):
            top = input_limit(dt)
            # compared before the cast, which would round values just past the maximum down to it
            flat = A.reshape(-1)  # fmax/fmin skip NaN (missing values) without warnings
            if np.fmax.reduce(flat) > top or np.fmin.reduce(flat) < -top:
                with np.errstate(invalid="ignore"):
                    over = (A > top) | (A < -top)
                where = np.argwhere(over)[0]
                r, c = (int(where[0]), int(where[1])) if A.ndim == 2 else (0, int(where[0]))
                raise RequestError(
                    f"{what} row {r}, column {c} is outside the accepted range ±{top:.3g} for "
                    f"{dt.name} features; send smaller numbers."
                )
        with np.errstate(over="ignore", invalid="ignore"):
            return A.astype(dt)
    if dt.kind in "iu":
        if A.dtype.kind == "f":
            if not np.isfinite(A).all() or not (A == np.floor(A)).all():
                raise RequestError(f"{what} must hold integers (the model takes {dt.name}); send whole numbers.")
        info = np.iinfo(dt)
        if A.size and (A.min() < info.min or A.max() > info.max):
            raise RequestError(f"{what} holds integers outside the {dt.name} range [{info.min}, {info.max}].")
        return A.astype(dt)
    if dt.kind == "b":
        raise RequestError(f"{what}: boolean model inputs are not supported on the fast path.")
    return A.astype(dt)


def _slow_matrix(rows: list, what: str, accepts_missing: bool) -> np.ndarray:
    """Walk the rows in Python: exact type checks, with the first bad cell named."""
    if not isinstance(rows[0], list):  # one flat row
        rows = [rows]
    width = None
    out: list[list[float]] = []
    nan = math.nan
    for r, row in enumerate(rows):
        if not isinstance(row, list):
            raise RequestError(f"{what} row {r} is {_describe(row)}, not a list of numbers; send every row as a list.")
        if width is None:
            width = len(row)
        elif len(row) != width:
            raise RequestError(
                f"{what} rows have different lengths (row 0 has {width} values, row {r} has {len(row)}); send equal-length rows."
            )
        vals = []
        for c, v in enumerate(row):
            t = type(v)
            if t is float or t is int:
                vals.append(float(v) if t is int and abs(v) > 2**53 else v)
            elif v is None and accepts_missing:
                vals.append(nan)
            elif v is None:
                raise RequestError(
                    f"{what} row {r}, column {c} is null (a missing value), which this model does not accept; impute it before sending."
                )
            else:
                raise _bad_cell(what, r, c, v)
        out.append(vals)
    try:
        with np.errstate(all="ignore"):
            return np.array(out, dtype=np.float64)
    except OverflowError:
        raise RequestError(f"{what} holds an integer too large for a float; send numbers within ±3.4e38.") from None


def check_matrix(
    X: np.ndarray, n_features: int | None, *, accepts_missing: bool = False, what: str = "Input"
) -> np.ndarray:
    """Shape and range checks: 2-D, the model's feature count, finite (NaN allowed only for missing-aware models)."""
    if X.ndim != 2:
        raise RequestError(f"{what} must be 2-D (rows x features) but has shape {list(X.shape)}; send a list of rows.")
    if X.shape[0] == 0:
        raise RequestError(f"{what} holds no rows; send at least one row.")
    if n_features is not None and X.shape[1] != n_features:
        raise RequestError(
            f"{what} has {X.shape[1]} features per row but the model takes {n_features}; send {n_features} values per row."
        )
    if not np.isfinite(X).all():
        bad = ~np.isfinite(X)
        if accepts_missing:
            bad = np.isinf(X)
        if bad.any():
            r, c = (int(i) for i in np.argwhere(bad)[0])
            v = X[r, c]
            kind = (
                "NaN (a missing value), which this model does not accept"
                if np.isnan(v)
                else ("infinite or outside the model's number range")
            )
            raise RequestError(f"{what} row {r}, column {c} is {kind}; send finite numbers.")
    return X


def columns_to_matrix(
    columns: dict, names: Sequence[str], *, accepts_missing: bool, what: str, dtype: Any = np.float32
) -> np.ndarray:
    """Columnar input {"name": [values...], ...} ordered as `names`."""
    missing = [n for n in names if n not in columns]
    if missing:
        raise RequestError(f"{what} lacks column(s) {missing[:5]}; send every feature the model takes.")
    cols = [columns[n] for n in names]
    if not all(isinstance(c, list) for c in cols):
        raise RequestError(f"{what} columns must be lists of numbers, one value per row.")
    lengths = {len(c) for c in cols}
    if len(lengths) != 1:
        raise RequestError(
            f"{what} columns have different lengths {sorted(lengths)[:5]}; send one value per row in each."
        )
    rows = [list(r) for r in zip(*cols)]
    return rows_to_matrix(rows, len(names), accepts_missing=accepts_missing, maybe_bools=True, what=what, dtype=dtype)


def records_to_matrix(
    records: list,
    names: Sequence[str] | None,
    n_features: int | None,
    *,
    accepts_missing: bool,
    what: str,
    dtype: Any = np.float32,
) -> np.ndarray:
    """Rows given as objects {"feature": value}: by the model's feature names when they all match, else by key order."""
    if not records:
        raise RequestError(f"{what} holds no records; send at least one.")
    first = records[0]
    if not isinstance(first, dict):
        raise RequestError(f"{what} must be a list of objects (one per row), not {_describe(first)}.")
    keys = list(first)
    order = list(names) if names and set(keys) == set(names) else keys
    rows = []
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise RequestError(f"{what} record {i} is {_describe(rec)}; send one object per row.")
        if len(rec) != len(order) or any(k not in rec for k in order):
            raise RequestError(
                f"{what} record {i} has different keys from record 0; send the same features in every record."
            )
        rows.append([rec[k] for k in order])
    return rows_to_matrix(rows, n_features, accepts_missing=accepts_missing, maybe_bools=True, what=what, dtype=dtype)


def is_column_name(c: object) -> bool:
    """A column name: a string or an integer (one past 64 bits arrives from the JSON parser as an integral float)."""
    return (
        isinstance(c, str)
        or (isinstance(c, int) and not isinstance(c, bool))
        or (isinstance(c, float) and c.is_integer())
    )


def order_columns(X: np.ndarray, columns: Sequence[Any] | None, names: Sequence[str] | None) -> np.ndarray:
    """Reorder X's columns to the model's feature order when the given names are exactly the model's."""
    if not columns or not names or list(columns) == list(names):
        return X
    if len(columns) == len(names) and len(set(columns)) == len(columns) and set(columns) == set(names):
        index = {c: i for i, c in enumerate(columns)}
        return np.ascontiguousarray(X[:, [index[n] for n in names]])
    return X


# --------------------------------------------------------------------------- CSV


def csv_to_matrix(
    body: bytes, n_features: int | None, names: Sequence[str] | None, *, accepts_missing: bool, dtype: Any = np.float32
) -> np.ndarray:
    """A CSV body with a header row (as pandas' to_csv writes it, index=False) -> float32 rows."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError("The CSV body is not valid UTF-8; send UTF-8 text.") from None
    if "\x00" in text:
        raise RequestError("The CSV body contains NUL bytes; send plain UTF-8 text.")
    try:
        table = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise RequestError(f"The CSV body is malformed ({exc}); send a header row then one row per line.") from None
    table = [row for row in table if row]  # blank lines, as pandas skips them
    if len(table) < 2:
        raise RequestError("The CSV body needs a header row and at least one data row.")
    header, data = table[0], table[1:]
    width = len(header)
    for i, row in enumerate(data):
        if len(row) != width:
            raise RequestError(
                f"CSV row {i + 1} has {len(row)} fields but the header has {width}; send equal-length rows."
            )
    try:
        values = np.array(data, dtype=np.float64)  # NumPy parses the strings in C
    except (ValueError, OverflowError):
        values = _csv_cells(data, width, accepts_missing)
    X = check_matrix(values, n_features, accepts_missing=accepts_missing, what="CSV input")
    return order_columns(to_dtype(X, dtype, "CSV input"), header, names)


def _csv_cells(data: list[list[str]], width: int, accepts_missing: bool) -> np.ndarray:
    """Cell-by-cell parse, for bodies NumPy refused: empty cells are missing values, the rest must be numbers."""
    values = np.empty((len(data), width), dtype=np.float64)
    for i, row in enumerate(data):
        for j, cell in enumerate(row):
            cell = cell.strip()
            if not cell:
                if not accepts_missing:
                    raise RequestError(
                        f"CSV row {i + 1}, column {j} is empty (a missing value), which this model does not accept."
                    )
                values[i, j] = math.nan
                continue
            try:
                values[i, j] = float(cell)
            except (ValueError, OverflowError):
                raise RequestError(
                    f"CSV row {i + 1}, column {j} is {cell[:40]!r}, not a number; send numbers only."
                ) from None
    return values
