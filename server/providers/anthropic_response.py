"""An Anthropic Messages answer as an OpenAI-shaped chat completion, usage mapped per PROVIDERS.md §4."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from tollgate.v1 import chat_pb2, relay_pb2

from server.errors import UpstreamError

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",  # a paused server-tool turn; the caller would have to resend to continue
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
# Anthropic's usage counters, all cumulative; `thinking_tokens` lives under `output_tokens_details`.
COUNTERS = ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens", "output_tokens")
THINKING = "thinking_tokens"
_MAX_COUNT = 10**12


def finish_reason(stop_reason: object) -> str:
    """The OpenAI finish_reason of an Anthropic stop_reason; an unknown one reads as a plain stop."""
    return FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def usage_counts(usage: Mapping[str, Any]) -> dict[str, int]:
    """The counters an Anthropic usage object reports; absent or null ones are left out.

    Hostile usage (a counter that is negative, absurd or not an integer) is ignored whole: no counter
    of it is believed, and billing falls back to its estimate.
    """
    details = usage.get("output_tokens_details")
    values = {key: usage.get(key) for key in COUNTERS}
    if isinstance(details, dict):
        values[THINKING] = details.get(THINKING)
    counts = {key: value for key, value in values.items() if value is not None}
    if not all(_is_count(value) for value in counts.values()):
        return {}
    return counts


def usage_from_counts(counts: Mapping[str, int]) -> chat_pb2.Usage:
    """OpenAI usage of Anthropic counters: the prompt is fresh input plus cache reads plus cache writes."""
    read = counts.get("cache_read_input_tokens", 0)
    write = counts.get("cache_creation_input_tokens", 0)
    prompt = counts.get("input_tokens", 0) + read + write
    completion = counts.get("output_tokens", 0)
    return chat_pb2.Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        prompt_tokens_details=chat_pb2.PromptTokensDetails(cached_tokens=read, cache_write_tokens=write),
        completion_tokens_details=chat_pb2.CompletionTokensDetails(reasoning_tokens=counts.get(THINKING, 0)),
    )


def malformed(what: str) -> UpstreamError:
    return UpstreamError(f"the upstream sent a malformed answer: {what}", retryable=False)


def text_field(block: Mapping[str, Any], key: str) -> str:
    """A string field of an upstream object; anything else is a malformed answer."""
    value = block.get(key)
    if not isinstance(value, str):
        raise malformed(f"{key} is not a string")
    return value


def from_anthropic_response(
    body: dict[str, Any], *, model: str, created: int
) -> relay_pb2.CreateChatCompletionResponse:
    """A whole chat completion from a Messages answer; a body of the wrong shape raises UpstreamError.

    Blocks with no Chat Completions slot (redacted_thinking, server tool blocks) are skipped.
    """
    if not isinstance(body, dict) or not isinstance(body.get("content"), list):
        raise malformed("no content list")
    usage = body.get("usage")
    counts = usage_counts(usage) if isinstance(usage, dict) else {}
    answer = relay_pb2.CreateChatCompletionResponse(
        id=text_field(body, "id"),
        object="chat.completion",
        created=created,
        model=model,
        choices=[
            chat_pb2.ChatChoice(
                index=0, message=_message(body["content"]), finish_reason=finish_reason(body.get("stop_reason"))
            )
        ],
    )
    if "input_tokens" in counts and "output_tokens" in counts:  # else no usage: the relay estimates it
        answer.usage.CopyFrom(usage_from_counts(counts))
    return answer


def _message(content: list[Any]) -> chat_pb2.ChatMessage:
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[chat_pb2.ToolCall] = []
    for block in content:
        if not isinstance(block, dict):
            raise malformed("a content block is not an object")
        kind = block.get("type")
        if kind == "text":
            texts.append(text_field(block, "text"))
        elif kind == "thinking":
            thoughts.append(text_field(block, "thinking"))
        elif kind == "tool_use":
            calls.append(_tool_call(block))
    message = chat_pb2.ChatMessage(role="assistant", tool_calls=calls)
    if texts or not calls:  # OpenAI sends `content: null` beside tool calls when there is no text
        message.content = "".join(texts)
    if thoughts:
        message.reasoning_content = "".join(thoughts)
    return message


def _tool_call(block: Mapping[str, Any]) -> chat_pb2.ToolCall:
    arguments = block.get("input")
    if not isinstance(arguments, dict):
        raise malformed("tool_use input is not an object")
    return chat_pb2.ToolCall(
        id=text_field(block, "id"),
        type="function",
        function=chat_pb2.FunctionCall(
            name=text_field(block, "name"), arguments=json.dumps(arguments, separators=(",", ":"))
        ),
    )


def _is_count(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and 0 <= value < _MAX_COUNT
