"""OpenAI-compatible upstreams (OpenAI, DeepSeek, …): the request goes as OpenAI JSON, answers come back the same."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
from tollgate.v1 import relay_pb2

from gateway.openai import wire
from server.config import ChannelConfig
from server.errors import InvalidArgumentError, UpstreamError
from server.providers.base import ChatCall, Deadlines
from server.providers.http import (
    StreamPacer,
    json_body,
    request_timeout,
    retry_after,
    sse_events,
    transport_errors,
)
from server.providers.openai_errors import error_from_openai

# DeepSeek ends a generation it could not finish for lack of capacity with this finish reason.
_CAPACITY_FINISH = "insufficient_system_resource"


class OpenAIProvider:
    """A channel of type `openai`."""

    def __init__(self, channel: ChannelConfig, client: httpx.AsyncClient) -> None:
        self._channel = channel
        self._client = client
        base = channel.base_url.rstrip("/")
        self._chat_url = f"{base}/v1/chat/completions"
        self._embeddings_url = f"{base}/v1/embeddings"
        self._headers = {"authorization": f"Bearer {channel.api_key}"}

    async def complete(self, call: ChatCall) -> relay_pb2.CreateChatCompletionResponse:
        body = wire.params_to_json(call.params)
        body["stream"] = False
        answer = await self._post(self._chat_url, body, call.deadlines, call.request_id)
        try:
            completion = wire.completion_from_json(answer)
        except wire.WireError as exc:
            raise UpstreamError(f"channel {self._channel.name} sent a malformed answer", retryable=True) from exc
        if any(choice.finish_reason == _CAPACITY_FINISH for choice in completion.choices):
            raise UpstreamError(f"channel {self._channel.name} ran out of capacity", retryable=True)
        return completion

    async def stream(self, call: ChatCall) -> AsyncIterator[relay_pb2.StreamChatCompletionResponse]:
        body = wire.params_to_json(call.params)
        body["stream"] = True
        body["stream_options"] = {**body.get("stream_options", {}), "include_usage": True}
        deadlines = call.deadlines
        with transport_errors(self._channel.name):
            request = self._client.build_request(
                "POST",
                self._chat_url,
                json=body,
                headers=self._headers_for(call.request_id),
                timeout=request_timeout(deadlines.connect, deadlines.first_byte),
            )
            async with asyncio.timeout(deadlines.first_byte + deadlines.connect):
                response = await self._client.send(request, stream=True)
            try:
                await self._raise_for_status(response)
                async for chunk in self._chunks(response, deadlines):
                    yield chunk
            finally:
                await response.aclose()

    async def embed(
        self, request: relay_pb2.CreateEmbeddingRequest, deadlines: Deadlines
    ) -> relay_pb2.CreateEmbeddingResponse:
        try:
            body = wire.embedding_request_to_json(request)
        except wire.WireError as exc:
            raise InvalidArgumentError(exc.message, param=exc.param) from exc
        answer = await self._post(self._embeddings_url, body, deadlines, "")
        try:
            return wire.embedding_response_from_json(answer)
        except wire.WireError as exc:
            raise UpstreamError(f"channel {self._channel.name} sent malformed embeddings", retryable=True) from exc

    async def _post(self, url: str, body: dict[str, Any], deadlines: Deadlines, request_id: str) -> Any:
        with transport_errors(self._channel.name):
            async with asyncio.timeout(deadlines.total):
                response = await self._client.post(
                    url,
                    json=body,
                    headers=self._headers_for(request_id),
                    timeout=request_timeout(deadlines.connect, deadlines.first_byte),
                )
        await self._raise_for_status(response)
        answer = json_body(response)
        if not isinstance(answer, dict):
            raise UpstreamError(f"channel {self._channel.name} sent a malformed answer", retryable=True)
        return answer

    def _headers_for(self, request_id: str) -> dict[str, str]:
        """The channel's auth headers, and Tollgate's request id so both sides can find one call."""
        return {**self._headers, "x-request-id": request_id} if request_id else self._headers

    async def _raise_for_status(self, response: httpx.Response) -> None:
        if response.status_code < 400:
            return
        await response.aread()
        raise error_from_openai(self._channel.name, response.status_code, json_body(response), retry_after(response))

    async def _chunks(
        self, response: httpx.Response, deadlines: Deadlines
    ) -> AsyncIterator[relay_pb2.StreamChatCompletionResponse]:
        name = self._channel.name
        events = sse_events(response)
        pacer = StreamPacer(deadlines)
        while True:
            try:
                async with asyncio.timeout(pacer.next_wait()):
                    _, data = await anext(events)
            except StopAsyncIteration:
                raise UpstreamError(f"channel {name} cut the stream", retryable=False) from None
            except TimeoutError:
                raise pacer.timeout_error(name) from None
            if data == "[DONE]":
                return
            try:
                parsed = json.loads(data)
                if not isinstance(parsed, dict):
                    raise ValueError("not an object")
                if "error" in parsed:
                    raise UpstreamError(f"channel {name} failed mid-stream", retryable=True)
                chunk = wire.chunk_from_json(parsed)
            except (ValueError, wire.WireError) as exc:
                raise UpstreamError(f"channel {name} sent a malformed chunk", retryable=False) from exc
            if any(choice.finish_reason == _CAPACITY_FINISH for choice in chunk.choices):
                raise UpstreamError(f"channel {name} ran out of capacity", retryable=True)
            pacer.received()
            yield chunk
