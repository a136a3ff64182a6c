"""The Open Inference Protocol over gRPC (KServe's `grpc_predict_v2.proto`) on a second port.

It runs in the HTTP server's process and event loop (grpc.aio), started and stopped by the app's lifespan
(`create_app(..., grpc_address=...)`), so it serves the same slots (active, canary) with the same predict
path (`app.infer_outputs`), request log and metrics (`Server.record`, protocol "grpc") as HTTP. Inputs come
typed (`contents`) or raw (`raw_input_contents`, little-endian as in the binary tensor data extension);
outputs always go back raw (`raw_output_contents`), as Triton answers. A refused request is a gRPC error
with one sentence: INVALID_ARGUMENT for bad input, NOT_FOUND for a model or version not served here.
"""

from __future__ import annotations

import logging
import math
from time import perf_counter
from typing import Any

import grpc
import numpy as np
from grpc import aio

from .. import __version__
from ..errors import ConfigError
from .errors import RequestError
from .protocols import grpc_predict_v2 as pb
from .protocols import oip, oip_binary
from .validation import to_dtype

log = logging.getLogger("aidevops.serving")

_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.FAILED_PRECONDITION,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
}
# datatype -> the InferTensorContents field holding its values when they are not sent raw
_CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def status_code(http_status: int) -> grpc.StatusCode:
    """The gRPC status of a refused request, from its HTTP status."""
    return _CODES.get(http_status, grpc.StatusCode.INTERNAL)


async def start(server: Any, host: str, port: int) -> aio.Server:
    """A started gRPC server for `server` (app.Server) on host:port; ConfigError when it cannot listen there."""
    grpc_server = aio.server(
        options=[
            ("grpc.max_receive_message_length", server.config.max_body_bytes),
            ("grpc.max_send_message_length", -1),
        ]
    )
    grpc_server.add_generic_rpc_handlers((handlers(InferenceService(server)),))
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        grpc_server.add_insecure_port(address)
    except RuntimeError:
        raise ConfigError(
            f"gRPC port {port} on {host} cannot be listened on (in use or not allowed); choose another with --grpc-port."
        ) from None
    await grpc_server.start()
    log.warning("serving the Open Inference Protocol over gRPC on %s", address)
    return grpc_server


def handlers(service: InferenceService) -> grpc.GenericRpcHandler:
    """The service's methods as gRPC handlers (messages from protocols/grpc_predict_v2.py)."""
    table = {}
    for rpc, (request, response) in pb.METHODS.items():
        table[rpc] = grpc.unary_unary_rpc_method_handler(
            getattr(service, rpc),
            request_deserializer=pb.message(request).FromString,
            response_serializer=pb.message(response).SerializeToString,
        )
    return grpc.method_handlers_generic_handler(pb.SERVICE, table)


class InferenceService:
    """GRPCInferenceService: health, metadata and ModelInfer over the app's Server."""

    def __init__(self, server: Any) -> None:
        self.server = server

    def _model(self, name: str, version: str) -> tuple[Any, str]:
        from .app import _oip_model  # noqa: PLC0415 - app imports this module only when gRPC is on

        return _oip_model(self.server.slots.state, name, version or None)

    async def ServerLive(self, request: Any, context: aio.ServicerContext) -> Any:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: aio.ServicerContext) -> Any:
        return pb.ServerReadyResponse(ready=True)

    async def ModelReady(self, request: Any, context: aio.ServicerContext) -> Any:
        model, problem = self._model(request.name, request.version)
        if model is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, problem)
        return pb.ModelReadyResponse(ready=True)

    async def ServerMetadata(self, request: Any, context: aio.ServicerContext) -> Any:
        return pb.ServerMetadataResponse(name=oip.SERVER_NAME, version=__version__, extensions=oip.EXTENSIONS)

    async def ModelMetadata(self, request: Any, context: aio.ServicerContext) -> Any:
        model, problem = self._model(request.name, request.version)
        if model is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, problem)
        versions = sorted({m.version for _, m in self.server.slots.state.models()})
        response = pb.ModelMetadataResponse(
            name=model.name, versions=versions, platform="aidevops" if model.kind == "aidevops" else "mlflow_pyfunc"
        )
        for field, tensors in (("inputs", model.input_tensors()), ("outputs", model.output_tensors())):
            for t in tensors:
                getattr(response, field).add(name=t["name"], datatype=t["datatype"], shape=t["shape"])
        return response

    async def ModelInfer(self, request: Any, context: aio.ServicerContext) -> Any:
        from .app import infer_outputs  # noqa: PLC0415

        start = perf_counter()
        server = self.server
        model, problem = self._model(request.model_name, request.model_version)
        if model is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, problem)
        rid = server.request_id()
        data = preds = error = None
        status = 200
        response = None
        try:
            parsed = parse_request(request, model)
            data = parsed.data
            outputs = await infer_outputs(server, model, parsed)
            preds = outputs[0][1]
            response = render_response(model, request.id, outputs)
        except RequestError as exc:
            error, status = exc, exc.status
        except Exception:  # noqa: BLE001 - a bug answers INTERNAL with a generic sentence, and is logged
            log.exception("gRPC ModelInfer failed")
            error, status = RequestError("Internal error while predicting; see the server log.", 500), 500
        server.record(model, "grpc", status, start, rid, data, preds, error)
        context.set_trailing_metadata((("x-request-id", rid), ("x-model-version", model.version)))
        if error is not None:
            await context.abort(status_code(status), error.message)
        return response


def parameters(params: Any) -> dict[str, Any]:
    """A protobuf map<string, InferParameter> as a dict of its values."""
    out = {}
    for key, value in params.items():
        choice = value.WhichOneof("parameter_choice")
        out[key] = getattr(value, choice) if choice else None
    return out


def parse_request(request: Any, model: Any) -> oip.InferRequest:
    """A ModelInferRequest as the HTTP path's checked oip.InferRequest."""
    if not request.inputs:
        raise RequestError("The request has no inputs; send one InferInputTensor per model input.")
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise RequestError(
            f"The request has {len(request.inputs)} inputs but {len(raw)} raw_input_contents; send one per input, "
            "in the same order."
        )
    tensors = []
    for i, t in enumerate(request.inputs):
        name, datatype, shape = t.name, t.datatype, list(t.shape)
        oip.check_header(name, shape, datatype)
        what = f"Input {name[:60]!r}"
        if raw:
            if t.HasField("contents"):
                raise RequestError(f"{what} has contents next to raw_input_contents; send its values one way.")
            reader = oip_binary.Tensors(memoryview(raw[i]))
            values = reader.take(len(raw[i]), shape, datatype, what)
            reader.finish()
        else:
            values = _contents(t, shape, datatype, what)
        tensors.append(oip.Tensor(name, shape, datatype, values))
    outputs = [{"name": o.name, "parameters": parameters(o.parameters)} for o in request.outputs]
    names = oip.requested_outputs(outputs or None, model)
    return oip.InferRequest(oip.model_input(tensors, model), names, request.id or None, parameters(request.parameters))


def _contents(t: Any, shape: list[int], datatype: str, what: str) -> np.ndarray:
    field = _CONTENTS.get(datatype)
    if field is None:
        raise RequestError(f"{what} is {datatype}, which has no typed contents field; send it in raw_input_contents.")
    contents = t.contents
    others = [f.name for f, _ in contents.ListFields() if f.name != field]
    if others:
        raise RequestError(f"{what} is {datatype}, so its values go in contents.{field}, not {others[0]}.")
    values = getattr(contents, field)
    count = math.prod(shape)
    if len(values) != count:
        raise RequestError(f"{what} holds {len(values)} values but its shape {shape} needs {count}.")
    if datatype == "BYTES":
        strings = np.empty(count, dtype=object)
        try:
            strings[:] = [bytes(v).decode("utf-8") for v in values]
        except UnicodeDecodeError:
            raise RequestError(f"{what} has BYTES values that are not UTF-8 text; send UTF-8 strings.") from None
        return strings.reshape(shape)
    dt = np.dtype(oip.DATATYPES[datatype])
    wide = {"b": np.bool_, "i": np.int64, "u": np.uint64, "f": np.float64}[dt.kind]
    A: np.ndarray = np.array(values, dtype=wide).reshape(shape)
    return to_dtype(A, dt, what)  # INT8 from int_contents and the like: range-checked


def render_response(model: Any, request_id: str, outputs: list[tuple[str, Any]]) -> Any:
    """A ModelInferResponse with every output in raw_output_contents."""
    response = pb.ModelInferResponse(model_name=model.name, model_version=model.version, id=request_id)
    for name, value in outputs:
        a, datatype = oip.output_array(value)
        response.outputs.add(name=name, datatype=datatype, shape=list(a.shape))
        response.raw_output_contents.append(oip_binary.tensor_bytes(a, datatype))
    return response
