"""Dispatch of a matched REST request over a grpc.aio channel: unary JSON or newline-delimited stream."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import message as message_lib
from google.rpc import status_pb2
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from gateway.body import (
    DEFAULT_BODY_LIMITS,
    BodyLimits,
    BodyRejectedError,
    DisconnectedError,
    read_body,
    unless_disconnected,
)
from gateway.codec import CodecError, decode_request, encode_response
from gateway.errors import error_headers, make_status, status_from_rpc_error, status_http_status, status_to_json
from gateway.metadata import REQUEST_ID_HEADER, CallOptions, MetadataError, call_options
from gateway.routing import Route, RouteMatch
from server import wire_json

JSON = "application/json"
_T = TypeVar("_T")

Message = message_lib.Message
UnaryCallable = grpc.aio.UnaryUnaryMultiCallable[Message, Message]
StreamCallable = grpc.aio.UnaryStreamMultiCallable[Message, Message]


def status_response(status: status_pb2.Status, headers: dict[str, str] | None = None) -> Response:
    """A google.rpc.Status JSON error response with grpc-gateway's HTTP status and Retry-After."""
    return Response(
        wire_json.dumps(status_to_json(status)),
        status_code=status_http_status(status),
        media_type=JSON,
        headers={**error_headers(status), **(headers or {})},
    )


ErrorResponder = Callable[[str, status_pb2.Status, dict[str, str]], Response]
"""(request path, status, headers) → the error response, so a layer can choose its error shape by path."""


def _status_responder(path: str, status: status_pb2.Status, headers: dict[str, str]) -> Response:
    return status_response(status, headers)


class Transcoder:
    """Calls the gRPC method of a matched route and answers in proto3 JSON.

    Client disconnects cancel the call. Server-streaming methods answer newline-delimited
    `{"result": …}` objects; an error before the first message is an ordinary error response,
    after it an `{"error": <Status>}` line ends the stream.
    """

    def __init__(
        self,
        channel: grpc.aio.Channel,
        *,
        default_timeout: float | None,
        body_limits: BodyLimits = DEFAULT_BODY_LIMITS,
        error_responder: ErrorResponder = _status_responder,
    ) -> None:
        self.error_response = error_responder
        self._channel = channel
        self._default_timeout = default_timeout
        self._body_limits = body_limits
        self._unary: dict[str, UnaryCallable] = {}
        self._streams: dict[str, StreamCallable] = {}

    async def handle(self, match: RouteMatch, request: Request) -> Response:
        route = match.route
        path = request.url.path
        client_host = request.client.host if request.client else None
        try:
            options = call_options(request.headers, client_host, default_timeout=self._default_timeout)
        except MetadataError as exc:
            return self.error_response(path, make_status(grpc.StatusCode.INVALID_ARGUMENT, str(exc)), {})
        headers = {REQUEST_ID_HEADER: options.request_id}
        try:
            body = await read_body(request, self._body_limits)
        except BodyRejectedError as exc:
            return self.error_response(path, exc.status, headers)
        query = request.scope.get("query_string", b"").decode("latin-1")
        try:
            message = decode_request(route, match.path_params, query, body)
        except CodecError as exc:
            return self.error_response(path, make_status(grpc.StatusCode.INVALID_ARGUMENT, str(exc)), headers)
        try:
            if route.server_streaming:
                return await self._call_stream(route, message, options, request.scope, headers)
            return await self._call_unary(route, message, options, request.scope, headers)
        except grpc.aio.AioRpcError as exc:
            return self.error_response(path, status_from_rpc_error(exc), headers)
        except DisconnectedError:
            return Response(status_code=499, headers=headers)

    async def _call_unary(
        self, route: Route, message: Message, options: CallOptions, scope: Scope, headers: dict[str, str]
    ) -> Response:
        call = self._unary_callable(route)(message, timeout=options.timeout, metadata=options.metadata)
        reply = await unless_disconnected(call, call, scope)
        return Response(wire_json.dumps(encode_response(route, reply)), media_type=JSON, headers=headers)

    async def _call_stream(
        self, route: Route, message: Message, options: CallOptions, scope: Scope, headers: dict[str, str]
    ) -> Response:
        call = self._stream_callable(route)(message, timeout=options.timeout, metadata=options.metadata)
        try:
            first = await unless_disconnected(call.read(), call, scope)
        except BaseException:
            call.cancel()
            raise
        return _CallStreamResponse(call, _stream_lines(route, first, call), media_type=JSON, headers=headers)

    def _unary_callable(self, route: Route) -> UnaryCallable:
        found = self._unary.get(route.grpc_method)
        if found is None:
            found = self._channel.unary_unary(
                route.grpc_method,
                request_serializer=route.request_class.SerializeToString,
                response_deserializer=route.response_class.FromString,
            )
            self._unary[route.grpc_method] = found
        return found

    def _stream_callable(self, route: Route) -> StreamCallable:
        found = self._streams.get(route.grpc_method)
        if found is None:
            found = self._channel.unary_stream(
                route.grpc_method,
                request_serializer=route.request_class.SerializeToString,
                response_deserializer=route.response_class.FromString,
            )
            self._streams[route.grpc_method] = found
        return found


async def _stream_lines(
    route: Route, first: Any, call: grpc.aio.UnaryStreamCall[Message, Message]
) -> AsyncIterator[bytes]:
    item = first
    try:
        while item is not grpc.aio.EOF:
            yield wire_json.dumps({"result": encode_response(route, item)}) + b"\n"
            item = await call.read()
    except grpc.aio.AioRpcError as exc:
        yield wire_json.dumps({"error": status_to_json(status_from_rpc_error(exc))}) + b"\n"


class _CallStreamResponse(StreamingResponse):
    """A streaming response that cancels its gRPC call however the response ends."""

    def __init__(self, call: grpc.aio.Call, content: AsyncIterator[bytes], **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self._call = call

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._call.cancel()
