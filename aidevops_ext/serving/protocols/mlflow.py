"""MLflow's scoring protocol: `POST /invocations` payloads in, `{"predictions": ...}` out.

Payloads, as MLflow's own server takes them: a JSON object with exactly one of `dataframe_split`,
`dataframe_records`, `instances`, `inputs` (plus optional `params`; other keys are ignored, as MLflow
does), or a CSV body with a header row. Errors are MLflow's shape: `{"error_code": ..., "message": ...}`.

Our models are parsed straight into a float array; any other pyfunc model exactly as `mlflow models
serve` parses for it: Python's JSON parser (which takes MLflow's own `NaN` literals, as in the
`serving_input_example.json` MLflow writes), then MLflow's `infer_and_parse_data` / `parse_csv_input`,
then the model's predict with MLflow's schema enforcement, which is the judge of types: nulls in numeric
columns, ints in double columns, numeric strings all get MLflow's answer, and what MLflow refuses is a
400 here too. tests/serving/test_foreign_parity.py sends one corpus to both servers to hold us to that.
The plain `dataframe_split` body of doubles and strings skips MLflow's generic parser for the same frame
built column by column (splitframe.py; tests/serving/test_foreign_splitframe.py compares the two).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from ..errors import RequestError
from ..fastjson import FastRows, parse_mlflow
from ..models import PyfuncModel, ServedModel
from ..validation import (
    columns_to_matrix,
    csv_to_matrix,
    decode_json,
    finish_matrix,
    has_bool_token,
    is_column_name,
    order_columns,
    records_to_matrix,
    rows_to_matrix,
    to_dtype,
)

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
JSON, CSV = "json", "csv"
CONTENT_TYPES = ("application/json", "text/csv")
REQUIRED_FORMAT = (
    "The input must be a JSON dictionary with exactly one of the input fields "
    "'dataframe_split', 'dataframe_records', 'instances', 'inputs' (and optionally 'params')"
)
_KINDS = {b"application/json": JSON, b"text/csv": CSV}
_NUMPY_OK = "biuf"


def content_kind(content_type: bytes | None) -> str:
    """JSON or CSV from a Content-Type header; 415 for anything else, or a charset other than UTF-8."""
    if not content_type:
        raise RequestError("The request has no Content-Type; send application/json or text/csv.", 415)
    kind = _KINDS.get(content_type)
    if kind is not None:
        return kind
    text = content_type.decode("latin-1")
    mime, *params = [p.strip() for p in text.split(";")]
    kind = _KINDS.get(mime.lower().encode("latin-1"))
    if kind is None:
        raise RequestError(f"Content-Type {text[:100]!r} is not supported; send application/json or text/csv.", 415)
    for param in params:
        key, _, value = param.partition("=")
        key, value = key.strip().lower(), value.strip().strip('"').lower()
        if key == "charset" and value not in ("utf-8", "utf8"):
            raise RequestError(f"Charset {value!r} is not supported; the scoring server only takes UTF-8.", 415)
        if key not in ("charset", ""):
            raise RequestError(f"Content-Type parameter {key!r} is not supported; send only charset=utf-8.", 415)
    return kind


def _envelope(obj: Any) -> tuple[str, Any, dict | None]:
    if not isinstance(obj, dict):
        got = "a list" if isinstance(obj, list) else f"a JSON {type(obj).__name__}"
        raise RequestError(f"{REQUIRED_FORMAT}. Received {got}.")
    keys = [k for k in FORMATS if k in obj]
    if len(keys) != 1:
        raise RequestError(f"{REQUIRED_FORMAT}. Received dictionary with input fields: {sorted(obj)[:10]}.")
    params = obj.get("params")
    if params is not None and not isinstance(params, dict):
        raise RequestError("'params' must be a JSON object of parameter names to values.")
    return keys[0], obj[keys[0]], params


def parse(body: bytes, kind: str, model: ServedModel) -> tuple[Any, dict | None]:
    """The model's input (a checked array for fast models) and params from an /invocations body."""
    if kind == CSV:
        if model.fast:
            X = csv_to_matrix(
                body,
                model.n_features,
                model.feature_names,
                accepts_missing=model.accepts_missing,
                dtype=model.input_dtype,
            )
            return X, None
        return _pyfunc_csv(body, _foreign(model)), None
    if model.fast:
        fast = parse_mlflow(body)
        if fast is not None:
            return _from_fast_rows(fast, model), fast.params
    if model.fast:
        key, value, params = _envelope(decode_json(body))
        return _fast_input(key, value, body, model), params
    foreign = _foreign(model)
    if foreign.split_kinds:  # the plain dataframe_split body: MLflow's frame, built without its generic parser
        from .splitframe import split_frame  # noqa: PLC0415 - pandas: foreign models only

        frame = split_frame(body, foreign.split_kinds)
        if frame is not None:
            return frame, None
    key, value, params = _envelope(_decode_like_mlflow(body))
    return _pyfunc_input(key, value, foreign), params


def _foreign(model: ServedModel) -> PyfuncModel:
    """The model behind MLflow's own input parsing: only an MLflow pyfunc is served without the fast path."""
    if not isinstance(model, PyfuncModel):
        raise TypeError(f"{model.label} is not an MLflow pyfunc model; its input takes the fast path only")
    return model


def _decode_like_mlflow(body: bytes) -> Any:
    """orjson first (fast); what it refuses, Python's json as MLflow's server uses it (NaN/Infinity literals)."""
    try:
        return decode_json(body)
    except RequestError:
        import json  # noqa: PLC0415

        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            pass
        raise


def _from_fast_rows(fast: FastRows, model: ServedModel) -> np.ndarray:
    """The same checks as the exact path, on rows simdjson already turned into numbers."""
    what = "'dataframe_split.data'" if fast.key == "dataframe_split" else f"'{fast.key}'"
    X = finish_matrix(
        fast.rows, model.n_features, accepts_missing=model.accepts_missing, dtype=model.input_dtype, what=what
    )
    if fast.key == "dataframe_split":
        if fast.columns is not None and len(fast.columns) != X.shape[1]:
            raise RequestError(
                f"'dataframe_split' names {len(fast.columns)} columns but its rows have {X.shape[1]} values."
            )
        if fast.n_index is not None and fast.n_index != X.shape[0]:
            raise RequestError(f"'dataframe_split' has {fast.n_index} index labels but {X.shape[0]} rows.")
        return order_columns(X, fast.columns, model.feature_names)
    return X


def _fast_input(key: str, value: Any, body: bytes, model: ServedModel) -> np.ndarray:
    names, n = model.feature_names, model.n_features
    opts: dict[str, Any] = {"accepts_missing": model.accepts_missing, "dtype": model.input_dtype}
    what = f"'{key}'"
    if key in ("inputs", "instances"):
        if isinstance(value, dict):
            if names and set(value) == set(names):  # columnar: {"feature": [values...]}
                return columns_to_matrix(value, names, what=what, **opts)
            if len(value) == 1 and isinstance(next(iter(value.values())), list):  # one named tensor
                return rows_to_matrix(
                    next(iter(value.values())), n, maybe_bools=has_bool_token(body), what=what, **opts
                )
            raise RequestError(
                f"{what} is an object whose keys are not the model's features; send a list of rows, or "
                "one column per feature."
            )
        if isinstance(value, list) and value and isinstance(value[0], dict):
            return records_to_matrix(value, names, n, what=what, **opts)
        return rows_to_matrix(value, n, maybe_bools=has_bool_token(body), what=what, **opts)
    if key == "dataframe_split":
        if not isinstance(value, dict) or "data" not in value:
            raise RequestError(
                "'dataframe_split' must be an object with 'data' (a list of rows) and optionally 'columns'."
            )
        unknown = sorted(set(value) - {"data", "columns", "index"})
        if unknown:
            raise RequestError(
                f"'dataframe_split' has unexpected key(s) {unknown[:5]}; pandas' split orient takes "
                "data, columns and index."
            )
        columns = value.get("columns")
        if columns is not None and not (isinstance(columns, list) and all(is_column_name(c) for c in columns)):
            raise RequestError("'dataframe_split.columns' must be a list of column names.")
        index = value.get("index")
        if index is not None and not isinstance(index, list):
            raise RequestError("'dataframe_split.index' must be a list.")
        X = rows_to_matrix(value["data"], None, maybe_bools=has_bool_token(body), what="'dataframe_split.data'", **opts)
        if columns is not None and len(columns) != X.shape[1]:
            raise RequestError(f"'dataframe_split' names {len(columns)} columns but its rows have {X.shape[1]} values.")
        if index is not None and len(index) != X.shape[0]:
            raise RequestError(f"'dataframe_split' has {len(index)} index labels but {X.shape[0]} rows.")
        if n is not None and X.shape[1] != n:
            raise RequestError(
                f"'dataframe_split.data' has {X.shape[1]} features per row but the model takes {n}; send {n} values per row."
            )
        return order_columns(X, columns, names)
    if not isinstance(value, list):
        raise RequestError("'dataframe_records' must be a list of objects, one per row.")
    return records_to_matrix(value, names, n, what=what, **opts)


def _mlflow_error(exc: Exception) -> RequestError:
    message = getattr(exc, "message", None) or str(exc)
    return RequestError(f"The input does not match the model: {str(message)[:500]}")


def _pyfunc_input(key: str, value: Any, model: PyfuncModel) -> Any:
    """MLflow's parser, nothing more: the model's schema enforcement decides, as in MLflow's own server."""
    from mlflow.pyfunc.scoring_server import infer_and_parse_data  # noqa: PLC0415 - foreign pyfunc models only

    try:
        return infer_and_parse_data({key: value}, model.input_schema)
    except Exception as exc:  # noqa: BLE001 - MLflow's parser raises MlflowException, pandas anything
        raise _mlflow_error(exc) from None


def _pyfunc_csv(body: bytes, model: PyfuncModel) -> Any:
    import io  # noqa: PLC0415

    from mlflow.pyfunc.scoring_server import parse_csv_input  # noqa: PLC0415

    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError("The CSV body is not valid UTF-8; send UTF-8 text.") from None
    try:
        return parse_csv_input(io.StringIO(text), schema=model.input_schema)
    except Exception as exc:  # noqa: BLE001
        raise _mlflow_error(exc) from None


def check_frame(data: Any, model: ServedModel) -> Any:
    """Boundary checks on what MLflow parsed: numeric columns hold numbers, finite unless missing values are allowed."""
    import pandas as pd  # noqa: PLC0415

    missing_ok = model.accepts_missing
    if isinstance(data, pd.DataFrame):
        numeric_columns = _foreign(model).numeric_columns
        for col in data.columns:
            series = data[col]
            kind = series.dtype.kind
            if col in numeric_columns and kind not in "fiu":
                raise RequestError(
                    f"Column {col!r} must hold numbers but holds {series.dtype} values; send JSON numbers."
                )
            if kind == "f":
                values = series.to_numpy()
                bad = np.isinf(values) if missing_ok else ~np.isfinite(values)
                if bad.any():
                    raise RequestError(f"Column {col!r} holds NaN or infinite values; send finite numbers.")
        return data
    if isinstance(data, dict):
        return {k: check_frame(v, model) for k, v in data.items()}
    if isinstance(data, np.ndarray):
        if data.dtype.kind == "f":
            bad = np.isinf(data) if missing_ok else ~np.isfinite(data)
            if bad.any():
                raise RequestError("The input holds NaN or infinite values; send finite numbers.")
        if (
            model.input_dtype is not None
            and _foreign(model).input_schema is not None
            and data.dtype.kind in "bUSO"
            and np.dtype(model.input_dtype).kind in "fiu"
        ):
            raise RequestError(f"The input holds {data.dtype} values but the model takes numbers; send JSON numbers.")
    return data


def fast_tensor(X: np.ndarray, model: ServedModel) -> np.ndarray:
    """X cast to the model's input dtype (our parsers produce it already; this guards other callers)."""
    return to_dtype(X, model.input_dtype)


def render(preds: Any, request_id: str) -> bytes:
    """`{"predictions": [...], "request_id": ...}` with numbers as MLflow writes them (float64 text)."""
    if isinstance(preds, np.ndarray):
        if preds.dtype.kind == "f" and preds.dtype != np.float64:
            preds = preds.astype(np.float64)
        if preds.dtype.kind in _NUMPY_OK and preds.flags.c_contiguous:
            return orjson.dumps({"predictions": preds, "request_id": request_id}, option=orjson.OPT_SERIALIZE_NUMPY)
        return orjson.dumps({"predictions": preds.tolist(), "request_id": request_id}, default=_default)
    from mlflow.utils.proto_json_utils import _get_jsonable_obj  # noqa: PLC0415 - pyfunc outputs only

    obj = _get_jsonable_obj(preds, pandas_orient="records")
    return orjson.dumps(
        {"predictions": obj, "request_id": request_id}, option=orjson.OPT_SERIALIZE_NUMPY, default=_default
    )


def _default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", "replace")
    return str(value)


def error_body(err: RequestError) -> bytes:
    """MLflow's error shape."""
    return orjson.dumps({"error_code": err.code, "message": err.message})
