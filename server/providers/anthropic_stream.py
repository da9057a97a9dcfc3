"""Anthropic Messages stream events as OpenAI chat completion chunks, one event at a time (PROVIDERS.md §4.1)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tollgate.v1 import chat_pb2, relay_pb2

from server.providers.anthropic_errors import error_from_stream_event
from server.providers.anthropic_response import finish_reason, malformed, text_field, usage_counts, usage_from_counts

Chunks = list[relay_pb2.StreamChatCompletionResponse]


class AnthropicStreamTranslator:
    """Turns a Messages stream into chat completion chunks.

    Feed it each parsed SSE event in order. It emits the role chunk first, then content, reasoning and
    tool-call deltas, one finish chunk on `message_delta` and, on `message_stop`, a usage chunk with no
    choices (always: the relay drops it when the client did not ask for usage). An `error` event raises
    UpstreamError. `usage` is safe to bill from at any point: each counter is the largest value any event
    reported, because Anthropic's counters are running totals and some bridges send 0 first.
    """

    def __init__(self, *, model: str, created: int) -> None:
        self._model = model
        self._created = created
        self._id = ""
        self._started = False
        self._finish_sent = False
        self._finished = False
        self._counts: dict[str, int] = {}
        self._tool_ordinals: dict[int, int] = {}  # content block index → position among tool calls
        self._chars = 0
        self._handlers: dict[str, Callable[[dict[str, Any]], Chunks]] = {
            "message_start": self._message_start,
            "content_block_start": self._block_start,
            "content_block_delta": self._block_delta,
            "message_delta": self._message_delta,
            "message_stop": self._message_stop,
        }

    @property
    def usage(self) -> chat_pb2.Usage:
        """The usage known so far, as OpenAI reports it."""
        return usage_from_counts(self._counts)

    @property
    def finished(self) -> bool:
        """Whether `message_stop` arrived: the answer is whole."""
        return self._finished

    @property
    def output_text_chars(self) -> int:
        """Characters of text, reasoning and tool arguments emitted so far, to estimate usage that never came."""
        return self._chars

    def feed(self, event: str, data: dict[str, Any]) -> Chunks:
        """The chunks one event becomes; ping, block stops and unknown events become none."""
        if event == "error":
            raise error_from_stream_event(data)
        handler = self._handlers.get(event)
        return handler(data) if handler is not None else []

    def _message_start(self, data: dict[str, Any]) -> Chunks:
        message = _object(data, "message")
        self._id = text_field(message, "id")
        self._record(message.get("usage"))
        return self._opening()

    def _block_start(self, data: dict[str, Any]) -> Chunks:
        block = _object(data, "content_block")
        if block.get("type") != "tool_use":
            return []
        ordinal = len(self._tool_ordinals)
        self._tool_ordinals[_index(data)] = ordinal
        call = chat_pb2.ToolCall(
            index=ordinal,
            id=text_field(block, "id"),
            type="function",
            function=chat_pb2.FunctionCall(name=text_field(block, "name"), arguments=""),
        )
        return self._delta(tool_calls=[call])

    def _block_delta(self, data: dict[str, Any]) -> Chunks:
        delta = _object(data, "delta")
        kind = delta.get("type")
        if kind == "text_delta":
            return self._delta(content=self._counted(text_field(delta, "text")))
        if kind == "thinking_delta":
            return self._delta(reasoning_content=self._counted(text_field(delta, "thinking")))
        if kind == "input_json_delta":
            ordinal = self._tool_ordinals.get(_index(data))
            if ordinal is None:
                raise malformed("tool input for a block that is not a tool_use")
            fragment = self._counted(text_field(delta, "partial_json"))
            return self._delta(
                tool_calls=[chat_pb2.ToolCall(index=ordinal, function=chat_pb2.FunctionCall(arguments=fragment))]
            )
        return []  # signature_delta, citations_delta: no Chat Completions slot; the signature stays upstream

    def _message_delta(self, data: dict[str, Any]) -> Chunks:
        self._record(data.get("usage"))
        reason = _object(data, "delta").get("stop_reason")
        if reason is None or self._finish_sent:
            return []
        self._finish_sent = True
        choice = chat_pb2.ChatChunkChoice(index=0, delta=chat_pb2.ChatDelta(), finish_reason=finish_reason(reason))
        return [*self._opening(), self._chunk(choices=[choice])]

    def _message_stop(self, data: dict[str, Any]) -> Chunks:
        self._finished = True
        return [*self._opening(), self._chunk(usage=self.usage)]

    def _record(self, usage: object) -> None:
        if not isinstance(usage, dict):
            return  # absent or hostile: the usage stays what earlier events said, and billing may estimate
        for key, value in usage_counts(usage).items():
            self._counts[key] = max(self._counts.get(key, 0), value)

    def _counted(self, text: str) -> str:
        self._chars += len(text)
        return text

    def _opening(self) -> Chunks:
        """The role chunk, once, before anything else (also when a bridge skipped `message_start`)."""
        if self._started:
            return []
        self._started = True
        delta = chat_pb2.ChatDelta(role="assistant", content="")
        return [self._chunk(choices=[chat_pb2.ChatChunkChoice(index=0, delta=delta)])]

    def _delta(self, **fields: Any) -> Chunks:
        choice = chat_pb2.ChatChunkChoice(index=0, delta=chat_pb2.ChatDelta(**fields))
        return [*self._opening(), self._chunk(choices=[choice])]

    def _chunk(self, **fields: Any) -> relay_pb2.StreamChatCompletionResponse:
        return relay_pb2.StreamChatCompletionResponse(
            id=self._id, object="chat.completion.chunk", created=self._created, model=self._model, **fields
        )


def _object(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise malformed(f"{key} is not an object")
    return value


def _index(data: Mapping[str, Any]) -> int:
    value = data.get("index")
    if isinstance(value, bool) or not isinstance(value, int):
        raise malformed("a content block event has no index")
    return value
