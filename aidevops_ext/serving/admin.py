"""The admin API: the deployment manager's HTTP handle on a running server's slots.

Disabled unless the server has an admin token (`ServingConfig.admin_token`, or the
AIDEVOPS_SERVING_ADMIN_TOKEN environment variable); requests carry `Authorization: Bearer <token>`.

    GET  /admin/slots                   the slots and recent history
    POST /admin/switch                  {"model_uri", "actor"?, "reason"?}: load, smoke-test, swap atomically
    POST /admin/rollback                {"actor"?, "reason"?}: swap active and previous
    POST /admin/canary                  {"model_uri", "share", "actor"?, "reason"?}: load, smoke-test, route a share
    POST /admin/canary/share            {"share", ...}
    POST /admin/canary/promote          {...}: the canary becomes active
    POST /admin/canary/clear            {...}: drop the canary
    POST /admin/shadow                  {"model_uri", ...}: load, smoke-test, mirror live traffic to it
    POST /admin/shadow/clear            {...}: stop mirroring and unload the shadow

`model_uri` is a registry URI only (`models:/NAME/VERSION` or `models:/NAME@ALIAS`): whoever holds the token
changes which registered version serves, never points the server at a path or a remote URL to load.

Answers: 200 {"event": ..., "slots": ...}; 422 when the version is refused (load or smoke test failed;
nothing changed); 409 when the operation does not fit the slots (no previous, no canary); 400 for a
bad body; 401/403 for a missing/wrong token or a disabled admin API.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import AidevopsError, ConfigError
from .errors import ModelRefused, RequestError, SlotError

if TYPE_CHECKING:
    from .app import Server


def _json(obj: Any, status: int = 200, headers: dict | None = None) -> Response:
    return Response(orjson.dumps(obj), status, headers=headers, media_type="application/json")


def _authorized(server: Server, request: Request) -> Response | None:
    token = server.config.admin_token
    if not token:
        return _json(
            {
                "error": "The admin API is disabled; start the server with an admin token "
                "(AIDEVOPS_SERVING_ADMIN_TOKEN) to use it."
            },
            403,
        )
    given = request.headers.get("authorization", "")
    scheme, _, value = given.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
        return _json(
            {"error": "Missing or wrong admin token; send Authorization: Bearer <token>."},
            401,
            {"WWW-Authenticate": "Bearer"},
        )
    return None


async def _body(server: Server, request: Request) -> dict:
    from .validation import decode_json  # noqa: PLC0415

    raw = await server.read_body(request.receive, request.headers.get("content-length", "").encode() or None)
    if not raw.strip():
        return {}
    obj = decode_json(raw)
    if not isinstance(obj, dict):
        raise RequestError("The admin request body must be a JSON object.")
    for key in ("actor", "reason"):
        if key in obj and (not isinstance(obj[key], str) or len(obj[key]) > 1000):
            raise RequestError(f"'{key}' must be a string of at most 1000 characters.")
    return obj


def registry_uri(uri: Any) -> str:
    """A `models:/NAME/VERSION` or `models:/NAME@ALIAS` URI from an admin body, else RequestError (400)."""
    from .loader import parse_uri  # noqa: PLC0415

    if isinstance(uri, str) and len(uri) <= 1000 and uri.strip().startswith("models:/"):
        try:
            if parse_uri(uri).is_registry:
                return uri.strip()
        except ConfigError:
            pass
    shown = repr(uri[:100]) if isinstance(uri, str) else type(uri).__name__
    raise RequestError(
        f"'model_uri' {shown} is not a registry URI; the admin API loads only models:/NAME/VERSION or "
        "models:/NAME@ALIAS (register the model first)."
    )


def admin_routes(server: Server) -> list[Route]:
    """The /admin routes bound to one server."""
    slots = server.slots

    def op(run: Callable[[dict], Any], *, needs_body: bool = True):
        async def endpoint(request: Request) -> Response:
            denied = _authorized(server, request)
            if denied is not None:
                return denied
            try:
                body = await _body(server, request) if needs_body else {}
                event = await anyio.to_thread.run_sync(run, body)
            except RequestError as exc:
                return _json({"error": exc.message}, exc.status)
            except ModelRefused as exc:
                return _json({"error": str(exc)}, 422)
            except SlotError as exc:
                return _json({"error": str(exc)}, 409)
            except (ConfigError, AidevopsError) as exc:
                return _json({"error": str(exc)}, 400)
            return _json({"event": event.to_dict(), "slots": slots.describe()})

        return endpoint

    def who(body: dict) -> dict:
        return {"actor": body.get("actor"), "reason": body.get("reason", "")}

    def share(body: dict) -> Any:
        if "share" not in body:
            raise RequestError("'share' is required: the canary's fraction of traffic, 0 to 1.")
        return body["share"]

    async def get_slots(request: Request) -> Response:
        denied = _authorized(server, request)
        return denied if denied is not None else _json(slots.describe())

    return [
        Route("/admin/slots", get_slots, methods=["GET"]),
        Route(
            "/admin/switch", op(lambda b: slots.switch(registry_uri(b.get("model_uri")), **who(b))), methods=["POST"]
        ),
        Route("/admin/rollback", op(lambda b: slots.rollback(**who(b))), methods=["POST"]),
        Route(
            "/admin/canary",
            op(lambda b: slots.set_canary(registry_uri(b.get("model_uri")), share(b), **who(b))),
            methods=["POST"],
        ),
        Route("/admin/canary/share", op(lambda b: slots.set_canary_share(share(b), **who(b))), methods=["POST"]),
        Route("/admin/canary/promote", op(lambda b: slots.promote_canary(**who(b))), methods=["POST"]),
        Route("/admin/canary/clear", op(lambda b: slots.clear_canary(**who(b))), methods=["POST"]),
        Route(
            "/admin/shadow",
            op(lambda b: slots.set_shadow(registry_uri(b.get("model_uri")), **who(b))),
            methods=["POST"],
        ),
        Route("/admin/shadow/clear", op(lambda b: slots.clear_shadow(**who(b))), methods=["POST"]),
    ]
