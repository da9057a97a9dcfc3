"""A Starlette app serving only the generic transcoder routes and their OpenAPI document."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute
from starlette.routing import Route as StarletteRoute
from starlette.types import Receive, Scope, Send

from gateway.body import DEFAULT_BODY_LIMITS, BodyLimits
from gateway.errors import make_status
from gateway.openapi import build_openapi
from gateway.pattern import PathDecodeError
from gateway.routing import RouteTable
from gateway.transcoder import ErrorResponder, Transcoder

_PATH_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/%")


def raw_path(scope: Scope) -> str:
    """The still percent-encoded request path (ASGI `raw_path`, else `path` re-encoded)."""
    raw: bytes | None = scope.get("raw_path")
    if raw is None:
        raw = scope["path"].encode()
    return "".join(chr(byte) if byte in _PATH_SAFE else f"%{byte:02X}" for byte in raw.partition(b"?")[0])


class TranscoderEndpoint:
    """ASGI endpoint: match the route table and dispatch, or answer google.rpc.Status NOT_FOUND."""

    def __init__(self, table: RouteTable, transcoder: Transcoder) -> None:
        self.table = table
        self.transcoder = transcoder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.dispatch(Request(scope, receive))
        await response(scope, receive, send)

    async def dispatch(self, request: Request) -> Response:
        path = request.url.path
        try:
            match = self.table.match(request.method, raw_path(request.scope))
        except PathDecodeError as exc:
            return self.transcoder.error_response(path, make_status(grpc.StatusCode.INVALID_ARGUMENT, str(exc)), {})
        if match is None:
            return self.transcoder.error_response(path, make_status(grpc.StatusCode.NOT_FOUND, "Not Found"), {})
        return await self.transcoder.handle(match, request)


def create_transcoder_app(
    channel: grpc.aio.Channel,
    services: Iterable[ServiceDescriptor],
    *,
    default_timeout: float | None,
    error_responder: ErrorResponder | None = None,
    routes: Sequence[BaseRoute] = (),
    body_limits: BodyLimits = DEFAULT_BODY_LIMITS,
) -> Starlette:
    """`routes` first, then routes from the services' google.api.http options, `GET /openapi.json`, 404 otherwise.

    Raises RouteError (at start-up) on an invalid binding.
    """
    table = RouteTable.from_services(services)
    document = build_openapi(table)
    transcoder = (
        Transcoder(channel, default_timeout=default_timeout, body_limits=body_limits)
        if error_responder is None
        else Transcoder(
            channel, default_timeout=default_timeout, body_limits=body_limits, error_responder=error_responder
        )
    )
    endpoint = TranscoderEndpoint(table, transcoder)

    async def openapi(_: Request) -> Response:
        return JSONResponse(document)

    return Starlette(
        routes=[
            *routes,
            StarletteRoute("/openapi.json", openapi, methods=["GET"]),
            StarletteRoute("/{path:path}", endpoint),
        ]
    )
