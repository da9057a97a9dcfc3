"""Pure translation between Tollgate's OpenAI-shaped chat messages and Anthropic's Messages API.

Requests: system and developer messages hoisted into `system`, same-role turns merged, tool calls as
`tool_use` blocks and tool messages as `tool_result` blocks at the head of one user turn, images as
base64 or URL sources (never fetched here), stop sequences, tools and tool_choice. Answers and stream
events come back as chat completions and chunks, usage mapped per PROVIDERS.md §4 and taken from the
cumulative `message_delta` values as a per-field maximum, never summed.
"""

from __future__ import annotations

import json
import re
from typing import Any

from google.protobuf import json_format
from tollgate.v1 import chat_pb2, relay_pb2

from server.errors import (
    ContextLengthExceededError,
    InvalidArgumentError,
    TollgateError,
    UpstreamError,
)
from server.providers.http import sanitized

IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
_DATA_URL = re.compile(r"^data:(?P<type>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)$", re.DOTALL)
_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
_RETRYABLE_EVENTS = {"overloaded_error": 529, "rate_limit_error": 429, "api_error": 500, "timeout_error": 504}


def to_anthropic_request(
    params: chat_pb2.ChatCompletionParams,
    *,
    upstream_model: str,
    max_tokens: int,
    stream: bool,
    api_version: str = "2023-06-01",
) -> dict[str, Any]:
    """The Messages API body for a chat request. Unmodelled OpenAI fields (`extra`) are not sent."""
    if params.HasField("n") and params.n > 1:
        raise InvalidArgumentError("Anthropic models answer one choice per request", param="n")
    body: dict[str, Any] = {"model": upstream_model, "max_tokens": max_tokens, "stream": stream}
    system, turns = _turns(params.messages)
    if system:
        body["system"] = system
    body["messages"] = turns
    if params.stop:
        body["stop_sequences"] = list(params.stop)
    if api_version == "2023-06-01":
        if params.HasField("temperature"):
            body["temperature"] = min(max(params.temperature, 0.0), 1.0)
        if params.HasField("top_p"):
            body["top_p"] = params.top_p
    if params.tools:
        body["tools"] = [_tool(tool, index) for index, tool in enumerate(params.tools)]
    choice = _tool_choice(params)
    if choice is not None:
        body["tool_choice"] = choice
    if params.response_format.type == "json_schema":
        schema = json_format.MessageToDict(params.response_format.json_schema.schema)
        body["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
    if params.user:
        body["metadata"] = {"user_id": params.user}
    return body


def _turns(messages: Any) -> tuple[str, list[dict[str, Any]]]:
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if message.role in ("system", "developer"):
            system.append(_plain_text(message, where))
            continue
        if message.role == "tool":
            role, blocks = "user", [_tool_result(message)]
        elif message.role == "assistant":
            role, blocks = "assistant", _assistant_blocks(message, where)
        elif message.role == "user":
            role, blocks = "user", _user_blocks(message, where)
        else:
            raise InvalidArgumentError(f"unknown role {message.role!r}", param=f"{where}.role")
        if turns and turns[-1]["role"] == role:
            previous = turns[-1]["content"]
            if blocks and blocks[0]["type"] == "tool_result":
                # tool_result blocks must open the user turn that follows the tool_use turn
                results = [b for b in previous if b["type"] == "tool_result"]
                others = [b for b in previous if b["type"] != "tool_result"]
                turns[-1]["content"] = results + blocks + others
            else:
                previous.extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return "\n\n".join(text for text in system if text), turns


def _plain_text(message: chat_pb2.ChatMessage, where: str) -> str:
    texts = [message.content] if message.HasField("content") else []
    for part in message.content_parts:
        if part.WhichOneof("part") != "text":
            raise InvalidArgumentError("system messages may hold text only", param=f"{where}.content")
        texts.append(part.text)
    return "\n".join(texts)


def _user_blocks(message: chat_pb2.ChatMessage, where: str) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if message.HasField("content") and message.content:
        blocks.append({"type": "text", "text": message.content})
    for index, part in enumerate(message.content_parts):
        blocks.append(_part_block(part, f"{where}.content[{index}]"))
    return blocks


def _part_block(part: chat_pb2.ContentPart, where: str) -> dict[str, Any]:
    kind = part.WhichOneof("part")
    if kind == "text":
        return {"type": "text", "text": part.text}
    if kind == "image_url":
        return {"type": "image", "source": _image_source(part.image_url.url, where)}
    if kind == "file" and part.file.file_data:
        found = _DATA_URL.match(part.file.file_data)
        if found is None or found["type"] != "application/pdf":
            raise InvalidArgumentError("only PDF files (as data URLs) can go to this model", param=where)
        return {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": found["data"]},
        }
    if kind == "other":
        other = json_format.MessageToDict(part.other)
        if other.get("type") == "text" and isinstance(other.get("text"), str):
            block = {"type": "text", "text": other["text"]}
            if isinstance(other.get("cache_control"), dict):
                block["cache_control"] = other["cache_control"]
            return block
    raise InvalidArgumentError(f"this content part ({kind}) cannot go to an Anthropic model", param=where)


def _image_source(url: str, where: str) -> dict[str, Any]:
    found = _DATA_URL.match(url)
    if found is not None:
        if found["type"] not in IMAGE_TYPES:
            raise InvalidArgumentError(f"images must be one of {', '.join(sorted(IMAGE_TYPES))}", param=where)
        return {"type": "base64", "media_type": found["type"], "data": found["data"]}
    if url.startswith(("https://", "http://")):
        return {"type": "url", "url": url}
    raise InvalidArgumentError("an image must be an http(s) URL or a base64 data URL", param=where)


def _assistant_blocks(message: chat_pb2.ChatMessage, where: str) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    text = message.content if message.HasField("content") else ""
    text += "".join(part.text for part in message.content_parts if part.WhichOneof("part") == "text")
    if text:
        blocks.append({"type": "text", "text": text})
    for index, call in enumerate(message.tool_calls):
        try:
            arguments = json.loads(call.function.arguments or "{}")
        except ValueError:
            raise InvalidArgumentError(
                "tool call arguments must be JSON", param=f"{where}.tool_calls[{index}].function.arguments"
            ) from None
        blocks.append({"type": "tool_use", "id": call.id, "name": call.function.name, "input": arguments})
    return blocks


def _tool_result(message: chat_pb2.ChatMessage) -> dict[str, Any]:
    text = message.content if message.HasField("content") else ""
    text += "".join(part.text for part in message.content_parts if part.WhichOneof("part") == "text")
    return {"type": "tool_result", "tool_use_id": message.tool_call_id, "content": text}


def _tool(tool: chat_pb2.Tool, index: int) -> dict[str, Any]:
    if tool.type not in ("", "function") or not tool.HasField("function"):
        raise InvalidArgumentError("only function tools can go to an Anthropic model", param=f"tools[{index}]")
    function = tool.function
    schema = json_format.MessageToDict(function.parameters) if function.HasField("parameters") else {}
    converted: dict[str, Any] = {"name": function.name, "input_schema": schema or {"type": "object"}}
    if function.description:
        converted["description"] = function.description
    if function.HasField("strict"):
        converted["strict"] = function.strict
    return converted


def _tool_choice(params: chat_pb2.ChatCompletionParams) -> dict[str, Any] | None:
    kind = params.tool_choice.WhichOneof("choice")
    choice: dict[str, Any] | None
    if kind is None:
        choice = None
    elif kind == "function_name":
        choice = {"type": "tool", "name": params.tool_choice.function_name}
    elif kind == "mode" and params.tool_choice.mode in ("none", "auto", "required"):
        choice = {"type": {"none": "none", "auto": "auto", "required": "any"}[params.tool_choice.mode]}
    else:
        raise InvalidArgumentError("this tool_choice has no Anthropic equivalent", param="tool_choice")
    if params.HasField("parallel_tool_calls") and not params.parallel_tool_calls:
        choice = choice or {"type": "auto"}
        if choice["type"] != "none":
            choice["disable_parallel_tool_use"] = True
    return choice


def usage_from_anthropic(values: dict[str, Any]) -> chat_pb2.Usage:
    """OpenAI usage of Anthropic counters: prompt = input + cache read + cache write."""
    fresh, read, write = (
        _count(values, key) for key in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
    )
    output = _count(values, "output_tokens")
    details = values.get("output_tokens_details")
    thinking = _count(details, "thinking_tokens") if isinstance(details, dict) else 0
    prompt = fresh + read + write
    return chat_pb2.Usage(
        prompt_tokens=prompt,
        completion_tokens=output,
        total_tokens=prompt + output,
        prompt_tokens_details=chat_pb2.PromptTokensDetails(cached_tokens=read, cache_write_tokens=write),
        completion_tokens_details=chat_pb2.CompletionTokensDetails(reasoning_tokens=thinking),
    )


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _count(values: Any, key: str) -> int:
    """A usage counter; anything but a sane non-negative integer counts as 0."""
    value = values.get(key) if isinstance(values, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**9 else 0


def from_anthropic_response(
    body: dict[str, Any], *, model: str, created: int
) -> relay_pb2.CreateChatCompletionResponse:
    """A whole chat completion from a Messages API answer."""
    content = body.get("content")
    if not isinstance(content, list):
        raise UpstreamError("the Anthropic answer has no content", retryable=False)
    message = chat_pb2.ChatMessage(role="assistant")
    texts: list[str] = []
    thoughts: list[str] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            texts.append(str(block.get("text", "")))
        elif block.get("type") == "thinking":
            thoughts.append(str(block.get("thinking", "")))
        elif block.get("type") == "tool_use":
            arguments = json.dumps(block.get("input", {}), separators=(",", ":"))
            message.tool_calls.add(
                index=len(message.tool_calls),
                id=str(block.get("id", "")),
                type="function",
                function=chat_pb2.FunctionCall(name=str(block.get("name", "")), arguments=arguments),
            )
    if texts or not message.tool_calls:
        message.content = "".join(texts)
    if thoughts:
        message.reasoning_content = "".join(thoughts)
    finish = _FINISH.get(str(body.get("stop_reason")), "stop")
    usage = body.get("usage")
    return relay_pb2.CreateChatCompletionResponse(
        id=str(body.get("id", "")),
        object="chat.completion",
        created=created,
        model=model,
        choices=[chat_pb2.ChatChoice(index=0, message=message, finish_reason=finish)],
        usage=usage_from_anthropic(usage if isinstance(usage, dict) else {}),
    )


class AnthropicStreamTranslator:
    """Turns Messages API stream events into chat completion chunks, one event at a time."""

    def __init__(self, *, model: str, created: int) -> None:
        self._model = model
        self._created = created
        self._id = ""
        self._usage: dict[str, int] = {}
        self._tool_index: dict[int, int] = {}
        self.finished = False
        self.output_text_chars = 0

    @property
    def usage(self) -> chat_pb2.Usage:
        """The usage known so far: per field, the largest value any event reported."""
        return usage_from_anthropic(dict(self._usage))

    def feed(self, event: str, data: dict[str, Any]) -> list[relay_pb2.StreamChatCompletionResponse]:
        handler = getattr(self, f"_on_{event}", None)
        return handler(data) if handler is not None else []

    def _chunk(self, **fields: Any) -> relay_pb2.StreamChatCompletionResponse:
        return relay_pb2.StreamChatCompletionResponse(
            id=self._id, object="chat.completion.chunk", created=self._created, model=self._model, **fields
        )

    def _delta(self, **delta: Any) -> list[relay_pb2.StreamChatCompletionResponse]:
        return [self._chunk(choices=[chat_pb2.ChatChunkChoice(index=0, delta=chat_pb2.ChatDelta(**delta))])]

    def _record_usage(self, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        for key in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens", "output_tokens"):
            self._usage[key] = max(self._usage.get(key, 0), _count(usage, key))

    def _on_message_start(self, data: dict[str, Any]) -> list[relay_pb2.StreamChatCompletionResponse]:
        message = _object(data.get("message"))
        self._id = str(message.get("id", ""))
        self._record_usage(message.get("usage"))
        return self._delta(role="assistant", content="")

    def _on_content_block_start(self, data: dict[str, Any]) -> list[relay_pb2.StreamChatCompletionResponse]:
        block = data.get("content_block")
        if not isinstance(block, dict) or block.get("type") != "tool_use":
            return []
        ordinal = len(self._tool_index)
        self._tool_index[int(data.get("index", 0))] = ordinal
        call = chat_pb2.ToolCall(
            index=ordinal,
            id=str(block.get("id", "")),
            type="function",
            function=chat_pb2.FunctionCall(name=str(block.get("name", "")), arguments=""),
        )
        return self._delta(tool_calls=[call])

    def _on_content_block_delta(self, data: dict[str, Any]) -> list[relay_pb2.StreamChatCompletionResponse]:
        delta = data.get("delta")
        if not isinstance(delta, dict):
            return []
        kind = delta.get("type")
        if kind == "text_delta":
            text = str(delta.get("text", ""))
            self.output_text_chars += len(text)
            return self._delta(content=text)
        if kind == "thinking_delta":
            text = str(delta.get("thinking", ""))
            self.output_text_chars += len(text)
            return self._delta(reasoning_content=text)
        if kind == "input_json_delta":
            fragment = str(delta.get("partial_json", ""))
            self.output_text_chars += len(fragment)
            ordinal = self._tool_index.get(int(data.get("index", 0)), 0)
            call = chat_pb2.ToolCall(index=ordinal, function=chat_pb2.FunctionCall(arguments=fragment))
            return self._delta(tool_calls=[call])
        return []

    def _on_message_delta(self, data: dict[str, Any]) -> list[relay_pb2.StreamChatCompletionResponse]:
        self._record_usage(data.get("usage"))
        delta = _object(data.get("delta"))
        reason = delta.get("stop_reason")
        if not reason:
            return []
        finish = _FINISH.get(str(reason), "stop")
        return [
            self._chunk(choices=[chat_pb2.ChatChunkChoice(index=0, delta=chat_pb2.ChatDelta(), finish_reason=finish)])
        ]

    def _on_message_stop(self, data: dict[str, Any]) -> list[relay_pb2.StreamChatCompletionResponse]:
        self.finished = True
        return [self._chunk(usage=self.usage)]

    def _on_error(self, data: dict[str, Any]) -> list[relay_pb2.StreamChatCompletionResponse]:
        error = _object(data.get("error"))
        kind = str(error.get("type", ""))
        status = _RETRYABLE_EVENTS.get(kind, 0)
        raise UpstreamError(
            f"the Anthropic upstream failed mid-stream ({sanitized(kind) or 'error'})",
            retryable=status != 0,
            upstream_status=status,
        )


def error_from_anthropic(status: int, body: Any, retry_after: float | None) -> TollgateError:
    """An Anthropic HTTP error as the domain error that fits it (see PROVIDERS.md §3.7)."""
    error = body.get("error") if isinstance(body, dict) else None
    message = sanitized(error.get("message")) if isinstance(error, dict) else ""
    if status == 400:
        if "prompt is too long" in message.lower() or "context" in message.lower():
            return ContextLengthExceededError(message or "the prompt is too long for the model", param="messages")
        return InvalidArgumentError(message or "the upstream refused the request")
    if status == 413:
        return InvalidArgumentError("the request is too large for the upstream", reason="request_too_large")
    if status == 429:
        return UpstreamError(
            "the Anthropic channel is rate limited", retryable=True, upstream_status=429, retry_after=retry_after
        )
    if status >= 500:
        return UpstreamError(
            f"the Anthropic channel failed ({status})", retryable=True, upstream_status=status, retry_after=retry_after
        )
    return UpstreamError(f"the Anthropic channel refused the call ({status})", retryable=False, upstream_status=status)
