"""POST /v1/messages (whole or server-sent events by the body's `stream` flag) and /v1/messages/count_tokens.

Claude clients authenticate with `x-api-key` or `Authorization: Bearer`, and send `anthropic-version`
(required, as Anthropic requires it; Tollgate chooses the version it speaks upstream) and optionally
`anthropic-beta` (passed on to Anthropic channels). Both routes go through the gRPC RelayService.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import grpc
from google.protobuf import json_format, struct_pb2
from google.rpc import status_pb2
from starlette.requests import Request
from starlette.responses import Response
from tollgate.v1 import messages_pb2

from gateway.anthropic.errors import anthropic_error_event, anthropic_error_response
from gateway.body import BodyLimits, BodyRejectedError, DisconnectedError, read_body, unless_disconnected
from gateway.errors import make_status, status_from_rpc_error
from gateway.metadata import REQUEST_ID_HEADER, CallOptions, MetadataError, call_options
from gateway.openai.routes import MAX_JSON_DEPTH, UPSTREAM_HEADERS, json_depth
from gateway.sse import event_stream_response, frame
from server import wire_json

_RELAY = "/tollgate.v1.RelayService/"


class _RequestError(Exception):
    def __init__(self, status: status_pb2.Status) -> None:
        self.status = status


def _invalid(message: str) -> _RequestError:
    return _RequestError(make_status(grpc.StatusCode.INVALID_ARGUMENT, message, reason="invalid_request_error"))


class AnthropicRoutes:
    """Handlers for the Anthropic routes, calling RelayService over one channel."""

    def __init__(self, channel: grpc.aio.Channel, *, body_limits: BodyLimits) -> None:
        self._body_limits = body_limits
        self._create = channel.unary_unary(
            _RELAY + "CreateMessage",
            request_serializer=messages_pb2.CreateMessageRequest.SerializeToString,
            response_deserializer=messages_pb2.CreateMessageResponse.FromString,
        )
        self._stream = channel.unary_stream(
            _RELAY + "StreamMessage",
            request_serializer=messages_pb2.StreamMessageRequest.SerializeToString,
            response_deserializer=messages_pb2.StreamMessageResponse.FromString,
        )
        self._count = channel.unary_unary(
            _RELAY + "CountMessageTokens",
            request_serializer=messages_pb2.CountMessageTokensRequest.SerializeToString,
            response_deserializer=messages_pb2.CountMessageTokensResponse.FromString,
        )

    async def messages(self, request: Request) -> Response:
        try:
            options, body = await self._prepare(request)
            streamed = body.pop("stream", False)
            if not isinstance(streamed, bool) and streamed is not None:
                raise _invalid("stream: must be true or false")
        except _RequestError as exc:
            return anthropic_error_response(exc.status)
        headers = {REQUEST_ID_HEADER: options.request_id}
        beta = request.headers.get("anthropic-beta", "")
        if streamed:
            message = messages_pb2.StreamMessageRequest(body=_struct(body), anthropic_beta=beta)
            return await self._event_stream(message, options, headers)
        call = self._create(
            messages_pb2.CreateMessageRequest(body=_struct(body), anthropic_beta=beta), **_call_kwargs(options)
        )
        return await self._unary(request, call, lambda reply: _json(reply.message), headers)

    async def count_tokens(self, request: Request) -> Response:
        try:
            options, body = await self._prepare(request)
        except _RequestError as exc:
            return anthropic_error_response(exc.status)
        call = self._count(messages_pb2.CountMessageTokensRequest(body=_struct(body)), **_call_kwargs(options))
        headers = {REQUEST_ID_HEADER: options.request_id}
        return await self._unary(request, call, lambda reply: {"input_tokens": reply.input_tokens}, headers)

    async def _prepare(self, request: Request) -> tuple[CallOptions, dict[str, Any]]:
        headers = request.headers.mutablecopy()
        key = headers.get("x-api-key")
        if key and "authorization" not in headers:
            headers["authorization"] = f"Bearer {key}"
        if "authorization" not in headers:
            raise _RequestError(
                make_status(
                    grpc.StatusCode.UNAUTHENTICATED,
                    "missing credential: send `x-api-key: <key>` or `authorization: Bearer <key>`",
                    reason="invalid_api_key",
                )
            )
        if "anthropic-version" not in headers:
            raise _invalid("anthropic-version: header is required")
        if any(header in headers for header in UPSTREAM_HEADERS):
            raise _invalid("the upstream is chosen by Tollgate's configuration, not by request headers")
        try:
            options = call_options(headers, request.client.host if request.client else None, default_timeout=None)
        except MetadataError as exc:
            raise _invalid(str(exc)) from exc
        try:
            raw = await read_body(request, self._body_limits)
        except BodyRejectedError as exc:
            raise _RequestError(exc.status) from None
        try:
            body = wire_json.loads(raw)
        except (ValueError, RecursionError):
            raise _invalid("the body is not valid JSON") from None
        if not isinstance(body, dict):
            raise _invalid("the body must be a JSON object")
        if json_depth(body) > MAX_JSON_DEPTH:
            raise _invalid(f"the body nests deeper than {MAX_JSON_DEPTH} levels")
        return options, body

    async def _unary(self, request: Request, call: Any, encode: Any, headers: dict[str, str]) -> Response:
        try:
            reply = await unless_disconnected(call, call, request.scope)
        except grpc.aio.AioRpcError as exc:
            return anthropic_error_response(status_from_rpc_error(exc), headers)
        except DisconnectedError:
            return Response(status_code=499, headers=headers)
        return Response(wire_json.dumps(encode(reply)), media_type="application/json", headers=headers)

    async def _event_stream(
        self, message: messages_pb2.StreamMessageRequest, options: CallOptions, headers: dict[str, str]
    ) -> Response:
        call = self._stream(message, **_call_kwargs(options))

        async def events() -> AsyncGenerator[bytes, None]:
            try:
                async for event in call:
                    yield frame(wire_json.dumps(_json(event.data)), event=event.event)
            finally:
                call.cancel()  # a client that left cancels the call, and through it the upstream request

        try:
            return await event_stream_response(events(), error_event=_stream_error, done_event=None, headers=headers)
        except grpc.aio.AioRpcError as exc:
            return anthropic_error_response(status_from_rpc_error(exc), headers)


def _stream_error(exc: Exception) -> bytes:
    if isinstance(exc, grpc.aio.AioRpcError):
        status = status_from_rpc_error(exc)
    else:
        status = make_status(grpc.StatusCode.INTERNAL, "the stream failed")
    return frame(anthropic_error_event(status), event="error")


def _call_kwargs(options: CallOptions) -> dict[str, Any]:
    return {"timeout": options.timeout, "metadata": options.metadata}


def _struct(body: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(body)
    return struct


def _json(struct: struct_pb2.Struct) -> Any:
    """A Struct as JSON, whole numbers as ints (a Struct holds every number as a double)."""
    return _whole(json_format.MessageToDict(struct))


def _whole(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _whole(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_whole(item) for item in value]
    return value
