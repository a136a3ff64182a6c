"""Open Inference Protocol v2 (KServe, Triton, MLServer): server/model metadata, infer requests and responses.

Request:  {"id"?, "parameters"?, "inputs": [{"name", "shape", "datatype", "data", "parameters"?}], "outputs"?: [{"name"}]}
Response: {"model_name", "model_version", "id", "outputs": [{"name", "shape", "datatype", "data"}]}
Errors:   {"error": "..."}

Tensor data may be flat (row-major) or nested to the tensor's shape, as the specification allows.
Our models take one input tensor of shape [n, n_features] and give `predict` (labels or values) and,
for classifiers, `predict_proba` ([n, n_classes]); with no `outputs` in the request, all are returned.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson

from ... import __version__
from ..errors import RequestError
from ..models import ServedModel, oip_datatype
from ..validation import decode_json, finish_matrix, has_bool_token, to_dtype

SERVER_NAME = "aidevops"
EXTENSIONS: list[str] = []
DATATYPES = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": object,
}
_ID_MAX = 256


def server_metadata() -> bytes:
    """GET /v2."""
    return orjson.dumps({"name": SERVER_NAME, "version": __version__, "extensions": EXTENSIONS})


def model_metadata(model: ServedModel, versions: list[str]) -> bytes:
    """GET /v2/models/{name}[/versions/{v}]."""
    return orjson.dumps(
        {
            "name": model.name,
            "versions": versions,
            "platform": "aidevops" if model.kind == "aidevops" else "mlflow_pyfunc",
            "inputs": model.input_tensors(),
            "outputs": model.output_tensors(),
        }
    )


def error_body(message: str) -> bytes:
    """The protocol's error shape."""
    return orjson.dumps({"error": message})


class InferRequest:
    """A parsed infer request: the model input, the requested outputs, the client's id and parameters."""

    __slots__ = ("data", "outputs", "id", "parameters")

    def __init__(self, data: Any, outputs: list[str] | None, id: str | None, parameters: dict | None) -> None:
        self.data, self.outputs, self.id, self.parameters = data, outputs, id, parameters


def parse_infer(body: bytes, model: ServedModel) -> InferRequest:
    """Check and decode an infer request for `model`."""
    obj = decode_json(body)
    if not isinstance(obj, dict):
        raise RequestError("An inference request must be a JSON object with an 'inputs' list.")
    unknown = sorted(set(obj) - {"id", "parameters", "inputs", "outputs"})
    if unknown:
        raise RequestError(
            f"Unknown field(s) {unknown[:5]} in the inference request; it takes id, parameters, inputs, outputs."
        )
    rid = obj.get("id")
    if rid is not None and (not isinstance(rid, str) or len(rid) > _ID_MAX):
        raise RequestError(f"'id' must be a string of at most {_ID_MAX} characters.")
    parameters = obj.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise RequestError("'parameters' must be a JSON object.")
    inputs = obj.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise RequestError("'inputs' must be a non-empty list of tensors ({name, shape, datatype, data}).")
    outputs = _requested_outputs(obj.get("outputs"), model)
    maybe_bools = has_bool_token(body)
    if model.fast:
        if len(inputs) != 1:
            raise RequestError(
                f"The model takes one input tensor ({model.input_tensors()[0]['name']}), got {len(inputs)}."
            )
        data = _tensor(inputs[0], maybe_bools, model, matrix=True)
    else:
        data = _frame(inputs, maybe_bools, model)
    return InferRequest(data, outputs, rid, parameters)


def _requested_outputs(outputs: Any, model: ServedModel) -> list[str] | None:
    if outputs is None:
        return None
    known = [t["name"] for t in model.output_tensors()]
    if not isinstance(outputs, list) or not all(
        isinstance(o, dict)
        and isinstance(o.get("name"), str)
        and set(o) <= {"name", "parameters"}
        and (o.get("parameters") is None or isinstance(o.get("parameters"), dict))
        for o in outputs
    ):
        raise RequestError("'outputs' must be a list of objects with a 'name' (and optional 'parameters' object).")
    names = [o["name"] for o in outputs]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise RequestError(f"Unknown output {unknown[0][:60]!r}; this model has outputs {known}.")
    return names


def _tensor_header(t: Any) -> tuple[str, list[int], str, Any]:
    if not isinstance(t, dict):
        raise RequestError("Each input tensor must be an object with name, shape, datatype and data.")
    unknown = sorted(set(t) - {"name", "shape", "datatype", "data", "parameters"})
    if unknown:
        raise RequestError(
            f"Unknown field(s) {unknown[:5]} in an input tensor; it takes name, shape, datatype, data, parameters."
        )
    name, shape, datatype, data = t.get("name"), t.get("shape"), t.get("datatype"), t.get("data")
    if not isinstance(name, str):
        raise RequestError("Each input tensor needs a string 'name'.")
    if not (isinstance(shape, list) and shape and all(type(s) is int and 0 <= s < 2**31 for s in shape)):
        raise RequestError(f"Input {name[:60]!r} needs a 'shape': a non-empty list of non-negative integers.")
    if not isinstance(datatype, str) or datatype not in DATATYPES:
        raise RequestError(f"Input {name[:60]!r} has datatype {str(datatype)[:20]!r}; use one of {sorted(DATATYPES)}.")
    if not isinstance(data, list):
        raise RequestError(
            f"Input {name[:60]!r} needs 'data': a list of values (flat, row-major, or nested to its shape)."
        )
    t_params = t.get("parameters")
    if t_params is not None and not isinstance(t_params, dict):
        raise RequestError(f"Input {name[:60]!r} has 'parameters' that are not an object.")
    return name, shape, datatype, data


def _tensor(t: Any, maybe_bools: bool, model: ServedModel, *, matrix: bool) -> np.ndarray:
    name, shape, datatype, data = _tensor_header(t)
    what = f"Input {name[:60]!r}"
    if datatype in ("BOOL", "BYTES") and np.dtype(model.input_dtype).kind in "fiu":
        raise RequestError(
            f"{what} has datatype {datatype} but the model takes {oip_datatype(model.input_dtype)} numbers."
        )
    if matrix:
        if len(shape) != 2:
            raise RequestError(f"{what} has shape {shape}; the model takes shape [rows, {model.n_features}].")
        if model.n_features is not None and shape[1] != model.n_features:
            raise RequestError(
                f"{what} has {shape[1]} features (shape {shape}) but the model takes {model.n_features}."
            )
        if shape[0] == 0:
            raise RequestError(f"{what} holds no rows; send at least one.")
    A = _values(data, shape, datatype, maybe_bools, what, missing_ok=model.accepts_missing)
    if matrix:
        return finish_matrix(
            A, model.n_features, accepts_missing=model.accepts_missing, dtype=model.input_dtype, what=what
        )
    return A


def _values(
    data: list, shape: list[int], datatype: str, maybe_bools: bool, what: str, missing_ok: bool = False
) -> np.ndarray:
    """The tensor's data as an array of `shape`, values checked against `datatype`."""
    size = math.prod(shape)
    dt = np.dtype(DATATYPES[datatype])
    A = None
    if not maybe_bools and dt.kind in "fiu":
        try:
            with np.errstate(all="ignore"):
                A = np.array(data)
        except (ValueError, TypeError, OverflowError, RecursionError, MemoryError):
            A = None
        if A is not None and A.dtype.kind not in "fiu":
            A = None
    if A is None:
        A = _walk(data, dt, what, missing_ok)
    if A.size != size:
        raise RequestError(f"{what} holds {A.size} values but its shape {shape} needs {size}.")
    if A.ndim != 1 and list(A.shape) != shape:
        raise RequestError(
            f"{what} is nested as {list(A.shape)} but its shape is {shape}; nest to the shape or send flat data."
        )
    A = A.reshape(shape)
    if dt.kind in "iu" and A.dtype.kind == "f":
        raise RequestError(f"{what} has datatype {datatype} but holds non-integer numbers; send integers.")
    if dt.kind in "fiu":
        A = to_dtype(A, dt, what)  # range of the declared datatype (e.g. FP16 overflow, INT8 bounds)
    return A


def _walk(data: list, dt: np.dtype, what: str, missing_ok: bool = False) -> np.ndarray:
    """Flatten nested data in Python with exact type checks (booleans, strings, nulls are named)."""
    flat: list[Any] = []
    shape: list[int] = []

    def visit(node: Any, depth: int) -> None:
        if isinstance(node, list):
            if len(shape) <= depth:
                shape.append(len(node))
            elif shape[depth] != len(node):
                raise RequestError(
                    f"{what} is ragged (lists of different lengths at depth {depth}); nest to the shape or send flat data."
                )
            if depth > 32:
                raise RequestError(f"{what} is nested deeper than any tensor shape; send flat data.")
            for item in node:
                visit(item, depth + 1)
            return
        if len(shape) != depth:
            raise RequestError(f"{what} mixes values and lists at the same depth; send flat data.")
        t = type(node)
        if dt.kind == "b":
            if t is not bool:
                raise RequestError(f"{what} has datatype BOOL but holds {node!r:.40}; send true/false.")
        elif dt.kind == "O":
            if t is not str:
                raise RequestError(f"{what} has datatype BYTES but holds {node!r:.40}; send strings.")
        elif node is None and missing_ok and dt.kind == "f":
            node = math.nan
        elif t is not int and t is not float:
            kind = "null" if node is None else ("a boolean" if t is bool else f"{t.__name__} {str(node)[:40]!r}")
            raise RequestError(f"{what} holds {kind} where its datatype needs numbers; send JSON numbers.")
        flat.append(node)

    visit(data, 0)
    try:
        A = np.array(flat, dtype=dt if dt.kind in "bO" else None)
    except (OverflowError, ValueError):
        raise RequestError(f"{what} holds numbers out of range for its datatype.") from None
    if dt.kind not in "bO" and A.dtype.kind not in "fiu":
        raise RequestError(f"{what} holds numbers out of range for its datatype.")
    return A.reshape(shape) if flat else A


def _frame(inputs: list, maybe_bools: bool, model: ServedModel) -> Any:
    """Inputs for a pyfunc model with named columns: one tensor per column, as MLServer's pandas codec does."""
    import pandas as pd  # noqa: PLC0415 - pyfunc models only

    columns: dict[str, Any] = {}
    n = None
    for t in inputs:
        name, shape, datatype, data = _tensor_header(t)
        A = _values(data, shape, datatype, maybe_bools, f"Input {name[:60]!r}", missing_ok=model.accepts_missing)
        if A.ndim == 2 and A.shape[1] == 1:
            A = A[:, 0]
        if A.ndim != 1:
            if len(inputs) == 1:
                return A
            raise RequestError(f"Input {name[:60]!r} has shape {shape}; send one column per tensor, shape [rows].")
        if n is not None and len(A) != n:
            raise RequestError("Input tensors have different row counts; send one value per row in each.")
        n = len(A)
        columns[name] = A
    if model.feature_names:
        missing = [c for c in model.feature_names if c not in columns]
        if missing:
            raise RequestError(f"Inputs lack column(s) {missing[:5]}; the model takes {model.feature_names[:20]}.")
    frame = pd.DataFrame(columns)
    from .mlflow import check_frame  # noqa: PLC0415

    return check_frame(frame, model)


def render_infer(
    model: ServedModel, request_id: str, outputs: list[tuple[str, Any]], parameters: dict | None = None
) -> bytes:
    """The infer response: each output flattened row-major with its shape and datatype."""
    tensors = []
    for name, value in outputs:
        a = value.to_numpy() if hasattr(value, "to_numpy") else np.asarray(value)
        shape = list(a.shape)
        datatype = oip_datatype(a.dtype)
        if a.dtype.kind == "f" and a.dtype != np.float64:
            a = a.astype(np.float64)  # the same decimal text MLflow's server writes
        flat = a.reshape(-1)
        if datatype == "BYTES" or not flat.flags.c_contiguous:
            data: Any = [v if isinstance(v, (str, int, float, bool)) or v is None else str(v) for v in flat.tolist()]
        else:
            data = flat
        tensors.append({"name": name, "shape": shape, "datatype": datatype, "data": data})
    body: dict[str, Any] = {"model_name": model.name, "model_version": model.version, "id": request_id}
    if parameters:
        body["parameters"] = parameters
    body["outputs"] = tensors
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
