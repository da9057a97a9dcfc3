"""Anthropic channels: OpenAI-shaped requests translated to the Messages API and answers back."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from tollgate.v1 import relay_pb2

from server import wire_json
from server.config import ChannelConfig
from server.errors import InvalidArgumentError, UpstreamError
from server.providers.anthropic_errors import error_from_anthropic
from server.providers.anthropic_request import to_anthropic_request
from server.providers.anthropic_response import from_anthropic_response
from server.providers.anthropic_stream import AnthropicStreamTranslator
from server.providers.base import ChatCall, Deadlines, MessageCall
from server.providers.http import HttpUpstream
from server.providers.http_client import HttpClient

# The version Tollgate speaks upstream, whatever its clients send (PROVIDERS.md §3.1).
ANTHROPIC_VERSION = "2023-06-01"


class AnthropicProvider:
    """A channel of type `anthropic`."""

    def __init__(self, channel: ChannelConfig, client: HttpClient) -> None:
        self._name = channel.name
        self._url = f"{channel.base_url.rstrip('/')}/v1/messages"
        headers = {"x-api-key": channel.api_key, "anthropic-version": ANTHROPIC_VERSION}
        self._http = HttpUpstream(channel.name, client, headers, error_from_anthropic)

    async def complete(self, call: ChatCall) -> relay_pb2.CreateChatCompletionResponse:
        answer = await self._http.post_json(self._url, self._body(call, stream=False), call.deadlines, call.request_id)
        return from_anthropic_response(answer, model=call.params.model, created=int(time.time()))

    async def stream(self, call: ChatCall) -> AsyncIterator[relay_pb2.StreamChatCompletionResponse]:
        translator = AnthropicStreamTranslator(model=call.params.model, created=int(time.time()))
        body = self._body(call, stream=True)
        events = self._http.stream_events(self._url, body, call.deadlines, call.request_id, _is_message_stop)
        async with contextlib.aclosing(events):
            async for event, data in events:
                parsed = self._parsed(data)
                for chunk in translator.feed(event or str(parsed.get("type", "")), parsed):
                    yield chunk
                if translator.finished:
                    return

    async def create_message(self, call: MessageCall) -> dict[str, Any]:
        return await self._http.post_json(self._url, call.body, call.deadlines, call.request_id, _beta(call))

    async def stream_message(self, call: MessageCall) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        events = self._http.stream_events(
            self._url, call.body, call.deadlines, call.request_id, _is_message_stop, _beta(call)
        )
        async with contextlib.aclosing(events):
            async for event, data in events:
                yield event, self._parsed(data)

    async def embed(
        self, request: relay_pb2.CreateEmbeddingRequest, deadlines: Deadlines
    ) -> relay_pb2.CreateEmbeddingResponse:
        raise InvalidArgumentError("Anthropic channels do not serve embeddings", param="model")

    def _parsed(self, data: str) -> dict[str, Any]:
        try:
            parsed = wire_json.loads(data)
        except ValueError as exc:
            raise UpstreamError(f"channel {self._name} sent a malformed event", retryable=False) from exc
        if not isinstance(parsed, dict):
            raise UpstreamError(f"channel {self._name} sent a malformed event", retryable=False)
        return parsed

    def _body(self, call: ChatCall, *, stream: bool) -> dict[str, Any]:
        return to_anthropic_request(
            call.params,
            upstream_model=call.params.model,
            max_tokens=call.output_limit,
            stream=stream,
            api_version=ANTHROPIC_VERSION,
        )


def _beta(call: MessageCall) -> dict[str, str]:
    return {"anthropic-beta": call.beta} if call.beta else {}


def _is_message_stop(event: str, data: str) -> bool:
    return event == "message_stop"
