"""The OpenAI-compatible routes whose contract HttpRule cannot say: chat completions and embeddings.

POST /v1/chat/completions answers whole or as server-sent events by the body's `stream` flag (the
OpenAI SDK sends `Accept: application/json` either way); both go through the gRPC RelayService.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import message as message_lib
from google.rpc import status_pb2
from starlette.requests import Request
from starlette.responses import Response
from tollgate.v1 import relay_pb2

from gateway.body import BodyLimits, BodyRejectedError, DisconnectedError, read_body, unless_disconnected
from gateway.errors import make_status, status_from_rpc_error
from gateway.metadata import REQUEST_ID_HEADER, CallOptions, MetadataError, call_options
from gateway.openai import wire
from gateway.openai.errors import openai_error_event, openai_error_response
from gateway.sse import event_stream_response, frame
from server import wire_json

_RELAY = "/tollgate.v1.RelayService/"
_M = TypeVar("_M", bound=message_lib.Message)
MAX_JSON_DEPTH = 64
# Headers some relays honour to pick an upstream host: refused here, where upstreams are configuration.
UPSTREAM_HEADERS = frozenset({"x-api-base", "x-base-url", "api-base", "x-upstream", "x-upstream-url", "x-target-url"})


class _RequestError(Exception):
    def __init__(self, status: status_pb2.Status) -> None:
        self.status = status


def _invalid(message: str, param: str | None = None, reason: str = "invalid_request_error") -> _RequestError:
    metadata = {"param": param} if param else None
    return _RequestError(make_status(grpc.StatusCode.INVALID_ARGUMENT, message, reason=reason, metadata=metadata))


class OpenAIRoutes:
    """Handlers for the OpenAI routes, calling RelayService over one channel."""

    def __init__(self, channel: grpc.aio.Channel, *, body_limits: BodyLimits) -> None:
        self._body_limits = body_limits
        self._create = channel.unary_unary(
            _RELAY + "CreateChatCompletion",
            request_serializer=relay_pb2.CreateChatCompletionRequest.SerializeToString,
            response_deserializer=relay_pb2.CreateChatCompletionResponse.FromString,
        )
        self._stream = channel.unary_stream(
            _RELAY + "StreamChatCompletion",
            request_serializer=relay_pb2.StreamChatCompletionRequest.SerializeToString,
            response_deserializer=relay_pb2.StreamChatCompletionResponse.FromString,
        )
        self._embed = channel.unary_unary(
            _RELAY + "CreateEmbedding",
            request_serializer=relay_pb2.CreateEmbeddingRequest.SerializeToString,
            response_deserializer=relay_pb2.CreateEmbeddingResponse.FromString,
        )

    async def chat_completions(self, request: Request) -> Response:
        try:
            options, body = await self._prepare(request)
            streamed = body.pop("stream", False)
            if not isinstance(streamed, bool) and streamed is not None:
                raise _invalid("stream must be true or false", "stream")
            params = _decode(wire.params_from_json, body)
        except _RequestError as exc:
            return openai_error_response(exc.status)
        headers = {REQUEST_ID_HEADER: options.request_id}
        if streamed:
            return await self._chat_stream(relay_pb2.StreamChatCompletionRequest(params=params), options, headers)
        call = self._create(relay_pb2.CreateChatCompletionRequest(params=params), **_call_kwargs(options))
        return await self._unary(request, call, wire.completion_to_json, headers)

    async def embeddings(self, request: Request) -> Response:
        try:
            options, body = await self._prepare(request)
            message = _decode(wire.embedding_request_from_json, body)
        except _RequestError as exc:
            return openai_error_response(exc.status)
        call = self._embed(message, **_call_kwargs(options))
        return await self._unary(
            request, call, wire.embedding_response_to_json, {REQUEST_ID_HEADER: options.request_id}
        )

    async def _prepare(self, request: Request) -> tuple[CallOptions, dict[str, Any]]:
        if "authorization" not in request.headers:
            # As OpenAI does: no key, no look at the body. A key itself is judged by the server.
            raise _RequestError(
                make_status(
                    grpc.StatusCode.UNAUTHENTICATED,
                    "missing credential: send `authorization: Bearer <key>`",
                    reason="invalid_api_key",
                )
            )
        if any(header in request.headers for header in UPSTREAM_HEADERS):
            raise _invalid("the upstream is chosen by Tollgate's configuration, not by request headers")
        client_host = request.client.host if request.client else None
        try:
            options = call_options(request.headers, client_host, default_timeout=None)
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
            return openai_error_response(status_from_rpc_error(exc), headers)
        except DisconnectedError:
            return Response(status_code=499, headers=headers)
        return Response(wire_json.dumps(encode(reply)), media_type="application/json", headers=headers)

    async def _chat_stream(
        self, message: relay_pb2.StreamChatCompletionRequest, options: CallOptions, headers: dict[str, str]
    ) -> Response:
        call = self._stream(message, **_call_kwargs(options))

        async def events() -> AsyncGenerator[bytes, None]:
            try:
                async for chunk in call:
                    yield frame(wire_json.dumps(wire.chunk_to_json(chunk)))
            finally:
                call.cancel()  # a client that left cancels the call, and through it the upstream request

        try:
            return await event_stream_response(events(), error_event=_stream_error, headers=headers)
        except grpc.aio.AioRpcError as exc:
            return openai_error_response(status_from_rpc_error(exc), headers)


def _stream_error(exc: Exception) -> bytes:
    if isinstance(exc, grpc.aio.AioRpcError):
        status = status_from_rpc_error(exc)
    else:
        status = make_status(grpc.StatusCode.INTERNAL, "the stream failed")
    return frame(openai_error_event(status))


def _call_kwargs(options: CallOptions) -> dict[str, Any]:
    return {"timeout": options.timeout, "metadata": options.metadata}


def _decode(decoder: Callable[[dict[str, Any]], _M], body: dict[str, Any]) -> _M:
    try:
        return decoder(body)
    except wire.WireError as exc:
        raise _invalid(str(exc), exc.param) from exc


def json_depth(value: Any, limit: int = MAX_JSON_DEPTH + 1) -> int:
    """Nesting depth of parsed JSON, counted up to `limit`."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > deepest:
            deepest = depth
            if deepest >= limit:
                return deepest
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return deepest
