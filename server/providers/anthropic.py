"""Anthropic channels: OpenAI-shaped requests translated to the Messages API and answers back."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
from tollgate.v1 import relay_pb2

from server.config import ChannelConfig
from server.errors import InvalidArgumentError, UpstreamError
from server.providers.anthropic_errors import error_from_anthropic
from server.providers.anthropic_request import to_anthropic_request
from server.providers.anthropic_response import from_anthropic_response
from server.providers.anthropic_stream import AnthropicStreamTranslator
from server.providers.base import ChatCall, Deadlines
from server.providers.http import (
    StreamPacer,
    json_body,
    request_timeout,
    retry_after,
    sse_events,
    transport_errors,
)

# The version Tollgate speaks upstream, whatever its clients send (PROVIDERS.md §3.1).
ANTHROPIC_VERSION = "2023-06-01"


class AnthropicProvider:
    """A channel of type `anthropic`."""

    def __init__(self, channel: ChannelConfig, client: httpx.AsyncClient) -> None:
        self._channel = channel
        self._client = client
        self._url = f"{channel.base_url.rstrip('/')}/v1/messages"
        self._headers = {"x-api-key": channel.api_key, "anthropic-version": ANTHROPIC_VERSION}

    async def complete(self, call: ChatCall) -> relay_pb2.CreateChatCompletionResponse:
        body = self._body(call, stream=False)
        deadlines = call.deadlines
        with transport_errors(self._channel.name):
            async with asyncio.timeout(deadlines.total):
                response = await self._client.post(
                    self._url,
                    json=body,
                    headers=self._headers_for(call.request_id),
                    timeout=request_timeout(deadlines.connect, deadlines.first_byte),
                )
        await self._raise_for_status(response)
        answer = json_body(response)
        if not isinstance(answer, dict):
            raise UpstreamError(f"channel {self._channel.name} sent a malformed answer", retryable=True)
        return from_anthropic_response(answer, model=call.params.model, created=int(time.time()))

    async def stream(self, call: ChatCall) -> AsyncIterator[relay_pb2.StreamChatCompletionResponse]:
        body = self._body(call, stream=True)
        deadlines = call.deadlines
        with transport_errors(self._channel.name):
            request = self._client.build_request(
                "POST",
                self._url,
                json=body,
                headers=self._headers_for(call.request_id),
                timeout=request_timeout(deadlines.connect, deadlines.first_byte),
            )
            async with asyncio.timeout(deadlines.first_byte + deadlines.connect):
                response = await self._client.send(request, stream=True)
            try:
                await self._raise_for_status(response)
                translator = AnthropicStreamTranslator(model=call.params.model, created=int(time.time()))
                async for chunk in self._chunks(response, translator, deadlines):
                    yield chunk
            finally:
                await response.aclose()

    async def embed(
        self, request: relay_pb2.CreateEmbeddingRequest, deadlines: Deadlines
    ) -> relay_pb2.CreateEmbeddingResponse:
        raise InvalidArgumentError("Anthropic channels do not serve embeddings", param="model")

    def _body(self, call: ChatCall, *, stream: bool) -> dict[str, Any]:
        return to_anthropic_request(
            call.params,
            upstream_model=call.params.model,
            max_tokens=call.output_limit,
            stream=stream,
            api_version=ANTHROPIC_VERSION,
        )

    def _headers_for(self, request_id: str) -> dict[str, str]:
        """The channel's auth headers, and Tollgate's request id so both sides can find one call."""
        return {**self._headers, "x-request-id": request_id} if request_id else self._headers

    async def _raise_for_status(self, response: httpx.Response) -> None:
        if response.status_code < 400:
            return
        await response.aread()
        raise error_from_anthropic(response.status_code, json_body(response), retry_after(response))

    async def _chunks(
        self, response: httpx.Response, translator: AnthropicStreamTranslator, deadlines: Deadlines
    ) -> AsyncIterator[relay_pb2.StreamChatCompletionResponse]:
        name = self._channel.name
        events = sse_events(response)
        pacer = StreamPacer(deadlines)
        while not translator.finished:
            try:
                async with asyncio.timeout(pacer.next_wait()):
                    event, data = await anext(events)
            except StopAsyncIteration:
                raise UpstreamError(f"channel {name} cut the stream", retryable=False) from None
            except TimeoutError:
                raise pacer.timeout_error(name) from None
            try:
                parsed = json.loads(data)
            except ValueError as exc:
                raise UpstreamError(f"channel {name} sent a malformed event", retryable=False) from exc
            if not isinstance(parsed, dict):
                raise UpstreamError(f"channel {name} sent a malformed event", retryable=False)
            pacer.received()
            for chunk in translator.feed(event or str(parsed.get("type", "")), parsed):
                yield chunk
