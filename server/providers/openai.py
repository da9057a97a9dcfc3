"""OpenAI-compatible upstreams (OpenAI, DeepSeek, …): the request goes as OpenAI JSON, answers come back the same."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator

from tollgate.v1 import relay_pb2

from gateway.openai import wire
from server import wire_json
from server.config import ChannelConfig
from server.errors import InvalidArgumentError, UpstreamError
from server.providers.base import ChatCall, Deadlines
from server.providers.http import HttpUpstream
from server.providers.http_client import HttpClient
from server.providers.openai_errors import error_from_openai

# DeepSeek ends a generation it could not finish for lack of capacity with this finish reason.
_CAPACITY_FINISH = "insufficient_system_resource"


class OpenAIProvider:
    """A channel of type `openai`."""

    def __init__(self, channel: ChannelConfig, client: HttpClient) -> None:
        self._name = channel.name
        base = channel.base_url.rstrip("/")
        self._chat_url = f"{base}/v1/chat/completions"
        self._embeddings_url = f"{base}/v1/embeddings"
        headers = {"authorization": f"Bearer {channel.api_key}"}
        self._http = HttpUpstream(channel.name, client, headers, functools.partial(error_from_openai, channel.name))

    async def complete(self, call: ChatCall) -> relay_pb2.CreateChatCompletionResponse:
        body = wire.params_to_json(call.params)
        body["stream"] = False
        answer = await self._http.post_json(self._chat_url, body, call.deadlines, call.request_id)
        try:
            completion = wire.completion_from_json(answer)
        except wire.WireError as exc:
            raise UpstreamError(f"channel {self._name} sent a malformed answer", retryable=True) from exc
        if any(choice.finish_reason == _CAPACITY_FINISH for choice in completion.choices):
            raise UpstreamError(f"channel {self._name} ran out of capacity", retryable=True)
        return completion

    async def stream(self, call: ChatCall) -> AsyncIterator[relay_pb2.StreamChatCompletionResponse]:
        body = wire.params_to_json(call.params)
        body["stream"] = True
        body["stream_options"] = {**body.get("stream_options", {}), "include_usage": True}
        events = self._http.stream_events(self._chat_url, body, call.deadlines, call.request_id, _is_done)
        async with contextlib.aclosing(events):
            async for _, data in events:
                if data == "[DONE]":
                    return
                chunk = self._chunk(data)
                if any(choice.finish_reason == _CAPACITY_FINISH for choice in chunk.choices):
                    raise UpstreamError(f"channel {self._name} ran out of capacity", retryable=True)
                yield chunk

    async def embed(
        self, request: relay_pb2.CreateEmbeddingRequest, deadlines: Deadlines
    ) -> relay_pb2.CreateEmbeddingResponse:
        try:
            body = wire.embedding_request_to_json(request)
        except wire.WireError as exc:
            raise InvalidArgumentError(exc.message, param=exc.param) from exc
        answer = await self._http.post_json(self._embeddings_url, body, deadlines, "")
        try:
            return wire.embedding_response_from_json(answer)
        except wire.WireError as exc:
            raise UpstreamError(f"channel {self._name} sent malformed embeddings", retryable=True) from exc

    def _chunk(self, data: str) -> relay_pb2.StreamChatCompletionResponse:
        try:
            parsed = wire_json.loads(data)
            if not isinstance(parsed, dict):
                raise ValueError("not an object")
            if "error" in parsed:
                raise UpstreamError(f"channel {self._name} failed mid-stream", retryable=True)
            return wire.chunk_from_json(parsed)
        except (ValueError, wire.WireError) as exc:
            raise UpstreamError(f"channel {self._name} sent a malformed chunk", retryable=False) from exc


def _is_done(event: str, data: str) -> bool:
    return data == "[DONE]"
