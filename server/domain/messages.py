"""Anthropic Messages API calls, relayed with the chat relay's admission, hold, failover, deadlines and settlement.

Anthropic channels get the client's body as it is (only the model renamed), so thinking signatures,
cache_control, documents and metadata survive; OpenAI-compatible channels get it translated to chat
params, and their answers and chunks are translated back. Usage is metered through the same OpenAI
usage the chat relay bills, so cache reads and writes are billed at their own prices.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any

from tollgate.v1 import relay_pb2

from server.domain.catalogue import CatalogueModel
from server.domain.metering import UsageMeter
from server.domain.records import ApiToken
from server.domain.relay import Relay, Settlement, metered
from server.domain.routing import Channel
from server.domain.token_count import text_tokens
from server.errors import ContextLengthExceededError, InvalidArgumentError, UpstreamError
from server.providers.anthropic_response import from_anthropic_response
from server.providers.anthropic_stream import AnthropicStreamTranslator
from server.providers.base import ChatCall, MessageCall, NativeMessages
from server.providers.messages_bridge import ChunkEvents, Event, chat_params, message_from_completion

IMAGE_TOKENS = 1_600
"""What an image or document block is counted as, instead of its base64 text (about Anthropic's cost of a
1000 by 1000 image)."""


@dataclasses.dataclass
class MessageStream:
    """A started message stream: its events and its settlement."""

    events: AsyncGenerator[Event, None]
    settle: Settlement

    async def close(self) -> None:
        """Ends the stream (if the consumer stopped early) and settles the call."""
        await self.events.aclose()
        await self.settle()


def input_estimate(body: Mapping[str, Any]) -> int:
    """Tokens of the prompt as the relay estimates them: text by length, media blocks at a flat rate."""
    media = 0

    def strip(value: Any) -> Any:
        nonlocal media
        if isinstance(value, dict):
            if value.get("type") in ("image", "document") and isinstance(value.get("source"), dict):
                media += 1
                return {}
            return {key: strip(item) for key, item in value.items()}
        if isinstance(value, list):
            return [strip(item) for item in value]
        return value

    prompt = {key: strip(body.get(key)) for key in ("system", "messages", "tools") if key in body}
    return text_tokens(json.dumps(prompt, separators=(",", ":"))) + media * IMAGE_TOKENS


class Messages:
    """Relays Anthropic Messages requests for an authenticated token."""

    def __init__(self, relay: Relay) -> None:
        self._relay = relay

    def count_tokens(self, token: ApiToken, body: Mapping[str, Any]) -> int:
        """The input estimate of a request to a model the token may use; no call, no charge."""
        prompt = input_estimate(body)
        self._model(token, body, prompt, need_output=False)
        return prompt

    async def create(
        self, token: ApiToken, body: Mapping[str, Any], beta: str, request_id: str, meter: UsageMeter
    ) -> dict[str, Any]:
        """The whole `message`, paid for by a hold and settled once."""
        with metered(meter):
            model = self._model(token, body, meter.prompt_estimate, need_output=True)
            reservation, settle = await self._relay.admit(token, model, meter, body["max_tokens"], request_id)
        try:
            with metered(meter):

                async def attempt(channel: Channel, served: CatalogueModel) -> dict[str, Any]:
                    deadlines = self._relay.deadlines(served)
                    upstream_model = channel.upstream_model(served.id)
                    provider = channel.provider
                    if isinstance(provider, NativeMessages):
                        upstream = {**body, "model": upstream_model, "stream": False}
                        message = await provider.create_message(MessageCall(upstream, deadlines, request_id, beta))
                        meter.saw_answer(from_anthropic_response(message, model=upstream_model, created=0))
                        return message
                    params = chat_params(body, upstream_model)
                    call = ChatCall(params, deadlines, request_id, output_limit=reservation.output_limit)
                    answer = await provider.complete(call)
                    meter.saw_answer(answer)
                    return message_from_completion(answer, served.id)

                message, served = await self._relay.failover(model, token.account_id, attempt)
                message["model"] = served.model
                meter.served_model, meter.channel = served.model, served.channel
                return message
        finally:
            await settle()

    async def stream(
        self, token: ApiToken, body: Mapping[str, Any], beta: str, request_id: str, meter: UsageMeter
    ) -> MessageStream:
        """Opens a stream once its first event is in, so failures before it can still fail over."""
        with metered(meter):
            model = self._model(token, body, meter.prompt_estimate, need_output=True)
            reservation, settle = await self._relay.admit(token, model, meter, body["max_tokens"], request_id)
        try:
            with metered(meter, until_success=False):

                async def attempt(channel: Channel, served: CatalogueModel) -> tuple[Event, AsyncGenerator[Event]]:
                    deadlines = self._relay.deadlines(served)
                    upstream_model = channel.upstream_model(served.id)
                    provider = channel.provider
                    if isinstance(provider, NativeMessages):
                        upstream = {**body, "model": upstream_model, "stream": True}
                        call = MessageCall(upstream, deadlines, request_id, beta)
                        events = _native_events(provider.stream_message(call), meter)
                    else:
                        params = chat_params(body, upstream_model)
                        chat_call = ChatCall(params, deadlines, request_id, reservation.output_limit)
                        events = _bridged_events(provider.stream(chat_call), served.id, meter)
                    try:
                        return await anext(events), events
                    except StopAsyncIteration:
                        raise UpstreamError(f"channel {channel.name} sent an empty stream", retryable=True) from None

                (first, rest), served = await self._relay.failover(
                    model, token.account_id, attempt, keep_place=settle.keep_place
                )
            meter.served_model, meter.channel = served.model, served.channel
            return MessageStream(_relabelled(first, rest, served.model, meter, settle), settle)
        except BaseException:
            await settle()
            raise

    def _model(self, token: ApiToken, body: Mapping[str, Any], prompt: int, *, need_output: bool) -> CatalogueModel:
        model = self._relay.catalogue.get(str(body.get("model", "")), token)
        if model.config.kind != "chat":
            raise InvalidArgumentError(f"{model.id} is not a chat model", param="model")
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            raise InvalidArgumentError("messages: a non-empty list is required", param="messages")
        output = 1
        if need_output:
            max_tokens = body.get("max_tokens")
            if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
                raise InvalidArgumentError("max_tokens: a positive integer is required", param="max_tokens")
            output = max_tokens
        if not model.config.vision and _has_images(body["messages"]):
            raise InvalidArgumentError(f"{model.id} does not accept images", param="messages")
        window = model.config.context_window
        needed = prompt + output
        if window and needed > window:
            raise ContextLengthExceededError(
                f"this request needs about {needed} tokens but {model.id} has a context window of {window}",
                param="messages",
            )
        return model


def _has_images(messages: list[Any]) -> bool:
    return any(
        isinstance(block, dict) and block.get("type") == "image"
        for message in messages
        if isinstance(message, dict) and isinstance(message.get("content"), list)
        for block in message["content"]
    )


async def _native_events(events: AsyncIterator[Event], meter: UsageMeter) -> AsyncGenerator[Event]:
    """Anthropic's own events, metered through the chat translation the chat relay bills from."""
    translator = AnthropicStreamTranslator(model="", created=int(time.time()))
    async with contextlib.aclosing(events) as source:  # type: ignore[type-var]  # an async generator
        async for name, data in source:
            for chunk in translator.feed(name, data):
                meter.saw_chunk(chunk)
            yield name, data


async def _bridged_events(
    chunks: AsyncIterator[relay_pb2.StreamChatCompletionResponse], model: str, meter: UsageMeter
) -> AsyncGenerator[Event]:
    """A chat upstream's chunks, metered, as Anthropic's events."""
    converter = ChunkEvents(model)
    async for chunk in chunks:
        meter.saw_chunk(chunk)
        for event in converter.feed(chunk):
            yield event
    for event in converter.finish():
        yield event


async def _relabelled(
    first: Event, rest: AsyncGenerator[Event], model: str, meter: UsageMeter, settle: Settlement
) -> AsyncGenerator[Event]:
    """The events with the served model's public id; however the stream ends, it is metered and settled."""
    try:
        with metered(meter):
            event: Event | None = first
            while event is not None:
                name, data = event
                if name == "message_start" and isinstance(data.get("message"), dict):
                    data["message"]["model"] = model
                yield event
                event = await anext(rest, None)
    finally:
        await rest.aclose()
        await settle()
