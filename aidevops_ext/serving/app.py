"""The ASGI app: MLflow's scoring protocol, the Open Inference Protocol v2, metrics, feedback, admin, OpenAPI.

The two prediction routes are plain ASGI callables mounted on Starlette's router (no Request/Response
objects, no middleware on the hot path): headers are read in one pass, the body is read with the size
limit enforced before and while reading, and the response is two `send` calls. Everything else uses
ordinary Starlette endpoints.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hmac
import itertools
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator
from time import perf_counter
from typing import Any

import anyio
import numpy as np
import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import __version__
from ..errors import ConfigError
from ..monitoring.rules import MonitorConfig
from .batching import PredictThread
from .config import ServingConfig
from .errors import RequestError
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .metrics import ServingCollector, make_registry, render
from .models import ServedModel
from .monitor import LiveMonitor, MonitorCollector
from .protocols import mlflow as mlflow_proto
from .protocols import oip
from .requestlog import LabelsDeferred, RequestLog
from .shadow import ShadowCollector
from .slots import ModelSlots

log = logging.getLogger("aidevops.serving")

JSON_TYPE = b"application/json"
BINARY_TYPE = b"application/octet-stream"
# The Open Inference Protocol's binary tensor extension: the JSON header's length; the tensors' bytes follow it.
BINARY_HEADER_LENGTH = b"inference-header-content-length"
_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")
_ERROR_KINDS = {
    400: "bad_input",
    404: "not_found",
    413: "too_large",
    415: "unsupported_media_type",
    421: "misdirected",
    500: "internal",
}
# Answered whatever else is configured: a browser page can make a request to a loopback name only from a page
# on that name, so they cannot carry a DNS-rebinding attack.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
MAX_FEEDBACK_ITEMS = 1000  # objects per /feedback body
MONITOR_REFRESH_MIN_S = 1.0  # GET /monitor?refresh=1 runs at most one pass a second
MAX_ITEM_LABELS = 10_000  # labels in one object's "labels"
# Labels in one /feedback body, all objects together: past it the body is refused whole (413), so one
# request can add at most this many feedback rows to deploy.db (the body size limit alone allowed ~500,000).
MAX_FEEDBACK_ROWS = 10_000
# A foreign model's body up to this size is parsed on the event loop (well under a millisecond); larger
# ones in a worker thread, so a big CSV or JSON batch never stalls the other connections.
INLINE_PARSE_BYTES = 64 * 1024


class ClientGone(Exception):
    """The client disconnected before its body arrived: nothing to answer."""


class Server:
    """What every route shares: the slots, the settings, the request log, the metrics registry, request ids."""

    def __init__(self, slots: ModelSlots, config: ServingConfig, requestlog: RequestLog) -> None:
        self.slots = slots
        self.config = config
        self.requestlog = requestlog
        self.collector = ServingCollector(lambda: self.slots.state.models(), slots.server_stats, requestlog.stats)
        self.registry = make_registry(self.collector)
        self._prefix = secrets.token_hex(6) + "-"
        self._counter = itertools.count(1)
        self.started = time.time()
        self.monitor: Any = None  # a monitor.LiveMonitor, set by create_app
        self.primary = True  # False in the secondary workers of `serve --workers N` (create_app)
        self._predictors: dict[int, PredictThread] = {}

    async def predict_foreign(self, model: ServedModel, data: Any, params: dict | None) -> Any:
        """A foreign pyfunc's predictions: a row-wise flavor (scikit-learn) in its prediction thread, where
        concurrent requests merge; any other in a worker thread each, as before (it may wait on I/O)."""
        if getattr(model, "row_wise", False):
            return await self.predictor(model).predict(data, params)
        return await anyio.to_thread.run_sync(model.predict, data, params)

    def predictor(self, model: ServedModel) -> PredictThread:
        """The prediction thread of a foreign model (made on first use; those of unloaded models are ended)."""
        worker = self._predictors.get(id(model))
        if worker is None or worker.model is not model:
            live = {id(m) for _, m in self.slots.state.models()} | {id(model)}
            for key in [k for k in self._predictors if k not in live]:
                self._predictors.pop(key).stop()
            worker = self._predictors[id(model)] = PredictThread(model, self.config.blas_threads)
        return worker

    def stop_predictors(self) -> None:
        """End every prediction thread (server shutdown)."""
        for worker in self._predictors.values():
            worker.stop()
        self._predictors.clear()

    def request_id(self) -> str:
        """A new request id: this process start's random prefix and a counter. Always the server's, never the
        client's: the request log is keyed by it and feedback names it, so a client cannot choose the id its
        rows are logged under (nor collide with another client's)."""
        return f"{self._prefix}{next(self._counter):x}"

    async def read_body(self, receive: Any, length: bytes | None) -> bytes:
        """The whole body, or 413 as soon as Content-Length (or the bytes so far) exceed the limit."""
        limit = self.config.max_body_bytes
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                raise RequestError("The Content-Length header is not a number.") from None
            if declared > limit:
                raise RequestError(_too_large(declared, limit), 413, "RESOURCE_EXHAUSTED")
        message = await receive()
        if message["type"] != "http.request":
            raise ClientGone()
        body = message.get("body", b"")
        if not message.get("more_body", False):
            if len(body) > limit:
                raise RequestError(_too_large(len(body), limit), 413, "RESOURCE_EXHAUSTED")
            return body
        chunks, size = [body], len(body)
        while True:
            message = await receive()
            if message["type"] != "http.request":
                raise ClientGone()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise RequestError(_too_large(size, limit), 413, "RESOURCE_EXHAUSTED")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def predict(self, model: ServedModel, data: Any, params: dict | None) -> Any:
        """Fast models predict on the event loop (microseconds); big batches and pyfunc models in a thread."""
        if (
            model.fast
            and isinstance(data, np.ndarray)
            and data.size <= self.config.inline_values
            and model.kind == "aidevops"
        ):
            preds = model.predict(data)
        else:
            preds = await anyio.to_thread.run_sync(model.predict, data, params)
        if isinstance(preds, np.ndarray) and preds.dtype.kind == "f" and not np.isfinite(preds).all():
            raise RequestError(
                "The model's output for this input is NaN or infinite; check the input is in the range the model "
                "was trained on."
            )
        return preds

    def record(
        self,
        model: ServedModel,
        protocol: str,
        status: int,
        start: float,
        rid: str,
        data: Any,
        preds: Any,
        error: RequestError | None,
    ) -> None:
        """Metrics for every request; a sampled entry in the request log (never blocks)."""
        elapsed = perf_counter() - start
        rows = len(data) if status == 200 and data is not None and hasattr(data, "__len__") else 0
        stats = model.stats
        stats.observe(protocol, status, elapsed, rows)
        if error is not None:
            stats.error(_ERROR_KINDS.get(status, str(status)))
        rl = self.requestlog
        # A body of a type the protocol does not take was never read: nothing of it is logged (a page in a
        # browser can send such bodies cross-site, and the log feeds drift and retraining).
        if rl.enabled and status != 415 and rl.admit(start):
            rl.offer(
                (
                    rid,
                    time.time(),
                    model.name,
                    model.version,
                    model.alias,
                    protocol,
                    status,
                    elapsed * 1000.0,
                    data,
                    preds,
                    None if error is None else error.message,
                )
            )
        if status == 200:  # the answer is sent: the shadow gets its copy off the request path (serving/shadow.py)
            self.slots.mirror(model, rid, data, preds)


def _too_large(size: int, limit: int) -> str:
    return (
        f"The request body is {size} bytes, over the {limit}-byte limit; send smaller batches "
        "(or raise the server's max body size)."
    )


async def _respond(
    send: Any,
    status: int,
    body: bytes,
    rid: str | None,
    content_type: bytes = JSON_TYPE,
    version: str | None = None,
    json_length: int | None = None,
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if json_length is not None:  # a binary tensor extension answer: the JSON header's length
        headers.append((BINARY_HEADER_LENGTH, str(json_length).encode()))
    if rid is not None:
        headers.append((b"x-request-id", rid.encode()))
    if version is not None:  # which version answered: with a canary, clients and simulators can tell
        headers.append((b"x-model-version", version.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _headers(scope: dict) -> tuple[bytes | None, bytes | None, bytes | None]:
    """(Content-Type, Content-Length, Inference-Header-Content-Length). A client's X-Request-ID is not read:
    the request id is the server's (Server.request_id)."""
    ctype = length = binary = None
    for key, value in scope["headers"]:
        if key == b"content-type":
            ctype = value
        elif key == b"content-length":
            length = value
        elif key == BINARY_HEADER_LENGTH:
            binary = value
    return ctype, length, binary


def require_json(content_type: bytes | str | None) -> None:
    """415 unless the Content-Type is application/json (a UTF-8 charset allowed). A body sent with no type, or
    text/plain or a form type, is what any web page can send cross-site without a CORS preflight: refused."""
    if isinstance(content_type, str):
        content_type = content_type.encode("latin-1", "replace")
    if not content_type:
        raise RequestError("The request has no Content-Type; send it with Content-Type: application/json.", 415)
    mime, *params = content_type.decode("latin-1").split(";")
    if mime.strip().lower() != "application/json":
        raise RequestError(
            f"Content-Type {content_type[:100].decode('latin-1')!r} is not supported; send application/json.", 415
        )
    for param in params:
        key, _, value = param.partition("=")
        key, value = key.strip().lower(), value.strip().strip('"').lower()
        if key != "charset" or value not in ("utf-8", "utf8"):
            raise RequestError(
                f"Content-Type parameter {param.strip()[:60]!r} is not supported; send application/json "
                "(with charset=utf-8 at most).",
                415,
            )


def infer_body_kind(content_type: bytes | None, header_length: bytes | None) -> int | None:
    """None for a JSON infer body; for the binary tensor extension, the length of the JSON header before the
    tensors' bytes. tritonclient sends binary requests with Inference-Header-Content-Length and no Content-Type
    (tritonclient/http/_client.py, `infer`); application/octet-stream is accepted too. A custom header needs a
    CORS preflight, which this server never grants, so no web page can send one. Anything else: 415 or 400."""
    if header_length is None:
        require_json(content_type)
        return None
    if content_type is not None and content_type.split(b";")[0].strip().lower() != BINARY_TYPE:
        raise RequestError(
            f"Content-Type {content_type[:100].decode('latin-1')!r} does not go with Inference-Header-Content-Length; "
            "send the binary tensor extension as application/octet-stream (or with no type), JSON without that header.",
            415,
        )
    try:
        length = int(header_length)
    except ValueError:
        length = -1
    if length < 0:
        raise RequestError("Inference-Header-Content-Length is not a non-negative whole number of bytes.")
    return length


def host_name(value: bytes) -> str:
    """The host of a Host header, lowercased, without its port ("[::1]:8080" -> "::1")."""
    host = value.decode("latin-1").strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[1:end] if end > 0 else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    """Whether a Host (from host_name) is one this server answers: loopback names, exact configured names,
    subdomains of a configured ".domain", or anything with "*" configured."""
    if host in LOOPBACK_HOSTS or host in allowed:
        return True
    for name in allowed:
        if name == "*" or (name.startswith(".") and (host.endswith(name) or host == name[1:])):
            return True
    return False


class _Endpoint:
    """An ASGI endpoint of `server`."""

    def __init__(self, server: Server) -> None:
        self.server = server


class Invocations(_Endpoint):
    """POST /invocations (MLflow's scoring protocol)."""

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        start = perf_counter()
        server = self.server
        _, model = server.slots.state.pick()
        ctype, length, _ = _headers(scope)
        rid = server.request_id()
        data = preds = error = None
        status = 200
        try:
            kind = mlflow_proto.content_kind(ctype)
            body = await server.read_body(receive, length)
            if model.fast:
                data, params = mlflow_proto.parse(body, kind, model)
                preds = await server.predict(model, data, params)
                out = mlflow_proto.render(preds, rid)
            else:  # a foreign pyfunc: MLflow's parsing, then the model's own prediction thread
                if len(body) <= INLINE_PARSE_BYTES:
                    data, params = mlflow_proto.parse(body, kind, model)
                else:
                    data, params = await anyio.to_thread.run_sync(mlflow_proto.parse, body, kind, model)
                preds = await server.predict_foreign(model, data, params)
                out = mlflow_proto.render(preds, rid)
        except RequestError as exc:
            error, status = exc, exc.status
            out = mlflow_proto.error_body(exc)
        except ClientGone:
            return
        except Exception:  # noqa: BLE001 - a bug must answer 500 in the protocol's shape, and be logged
            log.exception("invocations failed")
            error = RequestError("Internal error while predicting; see the server log.", 500, "INTERNAL_ERROR")
            status, out = 500, mlflow_proto.error_body(error)
        await _respond(send, status, out, rid, version=model.version)
        server.record(model, "mlflow", status, start, rid, data, preds, error)


class Infer(_Endpoint):
    """POST /v2/models/{name}[/versions/{version}]/infer (Open Inference Protocol)."""

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        start = perf_counter()
        server = self.server
        params = scope.get("path_params", {})
        state = server.slots.state
        ctype, length, binary = _headers(scope)
        rid = server.request_id()
        model, problem = _oip_model(state, params.get("name"), params.get("version"))
        if model is None:
            await _respond(send, 404, oip.error_body(problem), rid)
            return
        data = preds = error = answer_json_length = None
        status = 200
        try:
            json_length = infer_body_kind(ctype, binary)
            body = await server.read_body(receive, length)
            request = _parse_infer(body, json_length, model)
            data = request.data
            outputs = await infer_outputs(server, model, request)
            preds = outputs[0][1]
            # The protocol echoes the client's `id`; the X-Request-ID header (and the log) carry the server's.
            out, answer_json_length = oip.render_infer(model, request.id or rid, outputs, binary=request)
        except RequestError as exc:
            error, status = exc, exc.status
            out = oip.error_body(exc.message)
        except ClientGone:
            return
        except Exception:  # noqa: BLE001
            log.exception("infer failed")
            error = RequestError("Internal error while predicting; see the server log.", 500)
            status, out = 500, oip.error_body(error.message)
        if answer_json_length is not None and error is None:  # binary outputs (the binary tensor extension)
            await _respond(send, status, out, rid, BINARY_TYPE, model.version, answer_json_length)
        else:
            await _respond(send, status, out, rid, version=model.version)
        server.record(model, "oip", status, start, rid, data, preds, error)


def _parse_infer(body: bytes, json_length: int | None, model: ServedModel) -> Any:
    """An infer body as oip.InferRequest: JSON, or the binary tensor extension (a JSON header of `json_length`
    bytes, then the tensors)."""
    if json_length is None:
        return oip.parse_infer(body, model)
    return oip.parse_infer_binary(body, json_length, model)


def _oip_model(state: Any, name: str | None, version: str | None) -> tuple[ServedModel | None, str]:
    active = state.active
    if name != active.name:
        return None, f"Model {str(name)[:100]!r} is not served here; this server serves {active.name!r}."
    if version is None:
        return state.pick()[1], ""
    model = state.find(version)
    if model is None:
        loaded = sorted({m.version for _, m in state.models()})
        return None, f"Version {version[:40]!r} of {active.name!r} is not loaded; loaded versions: {loaded}."
    return model, ""


async def infer_outputs(server: Server, model: ServedModel, request: oip.InferRequest) -> list[tuple[str, Any]]:
    """The outputs an Open Inference request asks for, over HTTP or gRPC (grpc_server.py)."""
    if model.fast:
        return await _fast_outputs(server, model, request.data, request.outputs)
    return [("predict", await server.predict_foreign(model, request.data, request.model_parameters()))]


async def _fast_outputs(
    server: Server, model: ServedModel, X: np.ndarray, wanted: list[str] | None
) -> list[tuple[str, Any]]:
    names = wanted or [t["name"] for t in model.output_tensors()]
    outputs = []
    for name in names:
        if name == "predict":
            outputs.append((name, await server.predict(model, X, None)))
        else:
            proba = model.predict_proba(X)
            if proba is None:
                raise RequestError(f"This model has no output {name!r}.")
            outputs.append((name, proba))
    return outputs


# --------------------------------------------------------------------------- plain endpoints


def _json(obj: Any, status: int = 200, headers: dict | None = None) -> Response:
    return Response(
        orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY), status, headers=headers, media_type="application/json"
    )


def _error(message: str, status: int, headers: dict | None = None) -> Response:
    return _json({"error": message}, status, headers)


def build_routes(server: Server) -> list[Route]:
    """Every route of the server, the hot ones first (Starlette matches in order)."""
    from .admin import admin_routes  # noqa: PLC0415
    from .openapi import openapi_document  # noqa: PLC0415

    slots = server.slots
    infer = Infer(server)

    async def ping(request: Request) -> Response:
        return Response("\n", 200, media_type="application/json")

    async def version(request: Request) -> Response:
        return Response(__version__, 200, media_type="text/plain")

    async def v2_server(request: Request) -> Response:
        return Response(oip.server_metadata(), 200, media_type="application/json")

    async def v2_health(request: Request) -> Response:
        return Response(b"", 200, media_type="application/json")

    async def v2_model(request: Request) -> Response:
        state = slots.state
        model, problem = _oip_model(state, request.path_params["name"], request.path_params.get("version"))
        if model is None:
            return _error(problem, 404)
        versions = sorted({m.version for _, m in state.models()}, key=_version_key)
        return Response(oip.model_metadata(model, versions), 200, media_type="application/json")

    async def v2_model_ready(request: Request) -> Response:
        model, problem = _oip_model(slots.state, request.path_params["name"], request.path_params.get("version"))
        if model is None:
            return _error(problem, 404)
        return Response(b"", 200, media_type="application/json")

    async def metrics(request: Request) -> Response:
        return Response(render(server.registry), 200, media_type=METRICS_CONTENT_TYPE)

    monitor_refreshed = [0.0]  # when GET /monitor?refresh=1 last ran a pass (time.monotonic)

    async def monitor(request: Request) -> Response:
        """The live monitor's latest pass (drift, live quality, request stats, alerts); ?refresh=1 runs one now."""
        refresh = request.query_params.get("refresh", "0")
        if refresh not in ("0", "1", "true", "false"):
            return _error(
                f"refresh={refresh[:50]!r} is not valid; use refresh=1 to compute a pass now, or leave it out.", 400
            )
        # A forced pass costs a read of the window and every drift test: anyone who can reach /monitor may ask,
        # so at most one a second; a second ask within it gets the pass just made.
        now = time.monotonic()
        if not server.primary and now - monitor_refreshed[0] >= (server.config.monitor_seconds or 5.0):
            refresh = "1"  # a secondary worker runs no periodic pass: one on demand, at most once an interval
        if refresh in ("1", "true") and now - monitor_refreshed[0] >= MONITOR_REFRESH_MIN_S:
            monitor_refreshed[0] = now
            try:
                await anyio.to_thread.run_sync(server.monitor.refresh)
            except Exception:  # noqa: BLE001 - report, never 500; the details go to the log, not to the client
                log.exception("a monitor pass asked for by GET /monitor?refresh=1 failed")
                return _error("The monitor pass failed; see the server log.", 503)
        return Response(
            orjson.dumps(server.monitor.latest, option=orjson.OPT_SERIALIZE_NUMPY, default=str),
            200,
            media_type="application/json",
        )

    async def feedback(request: Request) -> Response:
        """Ground-truth labels for logged requests; only with the deployment's feedback token (labels change what a
        retrained model learns). Labels for requests this server has not logged, past a request's rows, or for a
        row already labelled are refused and counted (the first label of a row is kept)."""
        denied = _feedback_denied(server.config.feedback_token, request.headers.get("authorization"))
        if denied is not None:
            return denied
        try:
            require_json(request.headers.get("content-type"))
            body = await server.read_body(request.receive, request.headers.get("content-length", "").encode() or None)
            rows = parse_feedback(body)
        except RequestError as exc:
            return _error(exc.message, exc.status)
        except ClientGone:
            return Response(b"", 400)
        if not server.requestlog.path:
            return _error(
                "This server keeps no request log, so feedback cannot be stored; start it with a workspace.", 409
            )
        models = {m.name for _, m in slots.state.models()}
        try:
            written, refused = await server.requestlog.store_feedback(rows, models)
        except LabelsDeferred:
            return _error(
                "Labels are arriving faster than this deployment's retention can keep them; send them again in a "
                "second.",
                503,
                {"Retry-After": "1"},
            )
        except Exception as exc:  # noqa: BLE001 - the labels were not stored: say so, the client can retry
            log.warning("feedback write failed: %s", exc)
            return _error(
                f"The labels could not be stored ({type(exc).__name__}); retry later.", 503, {"Retry-After": "1"}
            )
        if refused.get("unknown") and (server.config.log_writers > 1 or not getattr(server, "primary", True)):
            late, late_refused, retried = await _labels_of_other_workers(server, rows, models)
            written += late
            refused = {**refused, "unknown": refused["unknown"] - retried}
            for why, n in late_refused.items():
                refused[why] = refused.get(why, 0) + n
            refused = {why: n for why, n in refused.items() if n}
        stats = slots.server_stats
        stats.feedback += 1
        stats.feedback_rows += written
        answer: dict[str, Any] = {"accepted": written, "refused": sum(refused.values())}
        if answer["refused"]:
            answer["refused_reason"] = refused_sentence(refused)
        if not written:
            return _json({"error": answer["refused_reason"], **answer}, 422)
        return _json(answer)

    cache: dict[Any, bytes] = {}

    async def openapi(request: Request) -> Response:
        active = slots.state.active
        key = (active.name, active.version)
        if key not in cache:
            cache.clear()
            cache[key] = orjson.dumps(openapi_document(active, server.config))
        return Response(cache[key], 200, media_type="application/json")

    return [
        Route("/invocations", Invocations(server), methods=["POST"]),
        Route("/v2/models/{name}/infer", infer, methods=["POST"]),
        Route("/v2/models/{name}/versions/{version}/infer", infer, methods=["POST"]),
        Route("/ping", ping, methods=["GET"]),
        Route("/health", ping, methods=["GET"]),
        Route("/version", version, methods=["GET"]),
        Route("/v2", v2_server, methods=["GET"]),
        Route("/v2/health/live", v2_health, methods=["GET"]),
        Route("/v2/health/ready", v2_health, methods=["GET"]),
        Route("/v2/models/{name}", v2_model, methods=["GET"]),
        Route("/v2/models/{name}/versions/{version}", v2_model, methods=["GET"]),
        Route("/v2/models/{name}/ready", v2_model_ready, methods=["GET"]),
        Route("/v2/models/{name}/versions/{version}/ready", v2_model_ready, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/monitor", monitor, methods=["GET"]),
        Route("/feedback", feedback, methods=["POST"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        *admin_routes(server),
    ]


async def _labels_of_other_workers(
    server: Server, rows: list[tuple[str, int, Any]], models: set[str]
) -> tuple[int, dict[str, int], int]:
    """(written, refused by reason, labels retried) for the labels whose request ids were unknown here: with
    several workers on one request log, another worker may have answered the request and not written it yet
    (every log_flush_seconds), so wait up to two flushes for it and store them then."""
    from ..db import connect  # noqa: PLC0415
    from .labels import known_ids  # noqa: PLC0415

    rl = server.requestlog
    db_path = rl.path
    if db_path is None:  # no request log: no other worker writes the rows these labels name
        return 0, {}, 0
    ids = sorted({rid for rid, _, _ in rows})

    def unknown(among: list[str]) -> set[str]:
        conn = connect(db_path)
        try:
            return set(among) - set(known_ids(conn, among, models, getattr(rl, "deployment", None)))
        finally:
            conn.close()

    missing = await anyio.to_thread.run_sync(unknown, ids)
    pending = set(missing)
    deadline = time.monotonic() + min(3.0, 2 * server.config.log_flush_seconds + 0.2)
    while pending and time.monotonic() < deadline:
        await anyio.sleep(0.1)
        pending = await anyio.to_thread.run_sync(unknown, sorted(pending))
    again = [r for r in rows if r[0] in missing - pending]
    if not again:
        return 0, {}, 0
    written, refused = await rl.store_feedback(again, models)
    return written, refused, len(again)


def _feedback_denied(token: str | None, authorization: str | None) -> Response | None:
    """None when the request carries the feedback token; else 403 (no token set) or 401, each one sentence."""
    if not token:
        return _error(
            "This server takes no feedback: it was started without a feedback token (AIDEVOPS_FEEDBACK_TOKEN); "
            "deploy it with `aidevops deploy` or set one.",
            403,
        )
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
        return _error(
            "Missing or wrong feedback token; send Authorization: Bearer <token>, the token `aidevops token NAME` "
            "prints for this deployment.",
            401,
            {"WWW-Authenticate": "Bearer"},
        )
    return None


_REFUSED = {
    "unknown": "name a request id this server has not logged (unknown, expired from the log, not sampled or failed)",
    "row": "name a row past the end of their request",
    "duplicate": "are for a row already labelled (its first label is kept)",
}


def refused_sentence(refused: dict[str, int]) -> str:
    """One sentence: how many labels were refused, and why."""
    parts = [f"{n} {_REFUSED.get(why, why)}" for why, n in refused.items() if n]
    return f"{sum(refused.values())} label(s) refused: " + "; ".join(parts) + "."


def _version_key(v: str) -> tuple:
    return (0, int(v), "") if v.isdigit() else (1, 0, v)


def parse_feedback(body: bytes) -> list[tuple[str, int, Any]]:
    """[(request_id, row, label)] from {"request_id", "label"|"labels", "row"?} or a list of such objects."""
    from .validation import decode_json  # noqa: PLC0415

    obj = decode_json(body)
    items = obj if isinstance(obj, list) else [obj]
    if not items:
        raise RequestError('The feedback list is empty; send {"request_id": ..., "label": ...}.')
    if len(items) > MAX_FEEDBACK_ITEMS:
        raise RequestError(f"Send at most {MAX_FEEDBACK_ITEMS} feedback objects per request.")
    rows: list[tuple[str, int, Any]] = []
    for i, item in enumerate(items):
        where = f"feedback item {i}" if isinstance(obj, list) else "the feedback"
        if not isinstance(item, dict):
            raise RequestError(f"{where} must be an object with request_id and label (or labels).")
        unknown = sorted(set(item) - {"request_id", "label", "labels", "row"})
        if unknown:
            raise RequestError(
                f"{where} has unknown field(s) {unknown[:5]}; it takes request_id, label or labels, row."
            )
        rid = item.get("request_id")
        if not isinstance(rid, str) or not _REQUEST_ID.fullmatch(rid.encode("utf-8", "replace")):
            raise RequestError(
                f"{where} needs request_id: the id a prediction response carried (X-Request-ID / request_id / id)."
            )
        has_label, has_labels = "label" in item, "labels" in item
        if has_label == has_labels:
            raise RequestError(
                f"{where} needs exactly one of 'label' (one row) or 'labels' (one per row of the request)."
            )
        if has_label:
            row = item.get("row", 0)
            if type(row) is not int or not 0 <= row <= 2**31:
                raise RequestError(f"{where} has a 'row' that is not a non-negative integer.")
            rows.append((rid, row, _label(item["label"], where)))
        else:
            labels = item["labels"]
            if "row" in item:
                raise RequestError(f"{where} has 'row' next to 'labels'; 'labels' holds one label per row from row 0.")
            if not isinstance(labels, list) or not labels or len(labels) > MAX_ITEM_LABELS:
                raise RequestError(f"{where} has 'labels' that is not a list of 1 to {MAX_ITEM_LABELS} labels.")
            rows.extend((rid, r, _label(v, where)) for r, v in enumerate(labels))
        if len(rows) > MAX_FEEDBACK_ROWS:
            raise RequestError(
                f"The feedback holds more than {MAX_FEEDBACK_ROWS} labels; send them in several requests.", 413
            )
    return rows


def _label(value: Any, where: str) -> Any:
    if isinstance(value, bool) or isinstance(value, int):
        return value
    if isinstance(value, float):
        if not np.isfinite(value):
            raise RequestError(f"{where} has a non-finite label.")
        return value
    if isinstance(value, str) and len(value) <= 1000:
        return value
    raise RequestError(f"{where} has a label that is not a number, string or boolean (at most 1000 characters).")


# --------------------------------------------------------------------------- app


async def _http_error(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 500)
    if status == 404:
        return _error(f"No route {request.url.path[:200]!r}; see /openapi.json for this server's endpoints.", 404)
    if status == 405:
        return _error(
            f"{request.method} is not allowed on {request.url.path[:200]!r}; see /openapi.json.",
            405,
            dict(getattr(exc, "headers", None) or {}),
        )
    return _error(str(getattr(exc, "detail", "error")), status)


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s", request.url.path, exc_info=exc)
    return _error("Internal server error; see the server log.", 500)


def create_app(
    slots: ModelSlots,
    config: ServingConfig | None = None,
    requestlog: RequestLog | None = None,
    *,
    follow: Any = None,
    monitor: MonitorConfig | None = None,
    deployment: str | None = None,
    grpc_address: tuple[str, int] | None = None,
    primary: bool = True,
) -> ServingApp:
    """The ASGI app serving `slots` (Starlette behind a front door for predictions; `.state.server` holds
    the shared Server). `follow`: an optional `watch.AliasFollower` started with the app; `monitor`: the
    alert rules and windows of the live monitor, whose alert state is kept under `deployment`;
    `grpc_address`: (host, port) of the Open Inference Protocol over gRPC (grpc_server.py), started with the app;
    `primary`: False in all but one of several workers on one request log, which then run neither the periodic
    monitor pass nor the compactor (GET /monitor in them computes a pass when theirs is older than the interval)."""
    config = config or ServingConfig()
    if requestlog is None:
        ws = slots.workspace
        requestlog = RequestLog(ws.deploy_db if ws is not None else None, config)
    requestlog.bind(deployment, monitor.retention if monitor is not None else None)
    requestlog.compact = primary
    server = Server(slots, config, requestlog)
    server.primary = primary
    slots.shadow_log, slots.deployment = requestlog.path, deployment  # where a shadow's answers are logged
    server.monitor = LiveMonitor(server, config=monitor, deployment=deployment, interval=config.monitor_seconds or 5.0)
    server.registry.register(MonitorCollector(server.monitor))
    server.registry.register(ShadowCollector(slots))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        requestlog.start()
        # What is loaded now (MLflow, pandas, the models) lives as long as the process: keep it out of the
        # garbage collector's full scans, which otherwise walk it again and again under load.
        gc.collect()
        gc.freeze()
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(follow.run(slots))] if follow is not None else []
        if config.monitor_seconds > 0 and requestlog.enabled and primary:
            tasks.append(loop.create_task(server.monitor.run()))
        grpc_server = None
        if grpc_address is not None:
            from . import grpc_server as grpc_oip  # noqa: PLC0415 - grpcio only when gRPC is on

            grpc_server = await grpc_oip.start(server, *grpc_address)
        try:
            yield
        finally:
            if grpc_server is not None:
                await grpc_server.stop(5)
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            server.stop_predictors()
            await anyio.to_thread.run_sync(slots.close)
            await anyio.to_thread.run_sync(requestlog.stop)

    app = Starlette(
        routes=build_routes(server),
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
        lifespan=lifespan,
    )
    app.state.server = server
    return ServingApp(app, server)


class ServingApp:
    """The Starlette app behind a front door for the two prediction routes.

    Predictions skip Starlette's middleware and route matching (their handlers answer every error
    themselves, in the protocol's shape); everything else, including 404/405 for other methods on
    those paths, goes through Starlette. Attributes (`state`, `routes`, ...) are the Starlette app's.
    """

    def __init__(self, app: Starlette, server: Server) -> None:
        self.app = app
        self.server = server
        self._invocations = Invocations(server)
        self._infer = Infer(server)
        self._allowed = tuple(server.config.allowed_hosts)
        self._hosts: dict[bytes, bool] = {}  # Host header -> answered (bounded: clients send few distinct ones)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)

    def _host_ok(self, scope: dict) -> bool:
        for key, value in scope["headers"]:
            if key == b"host":
                known = self._hosts.get(value)
                if known is None:
                    known = host_allowed(host_name(value), self._allowed)
                    if len(self._hosts) < 256:
                        self._hosts[value] = known
                return known
        return False

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not self._host_ok(scope):
            # A page on another origin can point its own name at this machine (DNS rebinding) and then talk to
            # the server as same-origin; its requests still carry that name as Host, so only known names pass.
            host = next((v for k, v in scope["headers"] if k == b"host"), b"")[:100].decode("latin-1")
            message = (
                f"Host {host!r} is not one this server answers; use 127.0.0.1 or localhost, or start it with "
                f"--allowed-host {host_name(host.encode('latin-1')) or 'NAME'}."
                if host
                else "The request has no Host header; send one (127.0.0.1, localhost or a name the server allows)."
            )
            return await _respond(send, 421 if host else 400, orjson.dumps({"error": message}), None)
        if scope["type"] == "http" and scope["method"] == "POST":
            path = scope["path"]
            root = scope.get("root_path")
            if root and path.startswith(root):
                path = path[len(root) :]
            if path == "/invocations":
                return await self._invocations(scope, receive, send)
            if path.startswith("/v2/models/") and path.endswith("/infer"):
                parts = path[len("/v2/models/") : -len("/infer")].split("/")
                params = None
                if len(parts) == 1 and parts[0]:
                    params = {"name": parts[0]}
                elif len(parts) == 3 and parts[0] and parts[1] == "versions" and parts[2]:
                    params = {"name": parts[0], "version": parts[2]}
                if params is not None:
                    scope["path_params"] = params
                    return await self._infer(scope, receive, send)
        await self.app(scope, receive, send)


def check_model_uri(uri: Any) -> str:
    """A model URI from an admin body, or ConfigError."""
    if not isinstance(uri, str) or not uri.strip() or len(uri) > 1000:
        raise ConfigError(
            "'model_uri' must be a model URI string (models:/NAME/VERSION, models:/NAME@ALIAS or a path)."
        )
    return uri.strip()
