"""Anthropic Messages requests for OpenAI-compatible channels: the body to chat params, answers and chunks back.

The reverse of anthropic_request / anthropic_response / anthropic_stream. Blocks a chat upstream
cannot take (thinking signatures, cache_control, documents) are dropped here; Anthropic channels
never come through this module.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from google.protobuf import json_format
from tollgate.v1 import chat_pb2, relay_pb2

from server.errors import InvalidArgumentError

Event = tuple[str, dict[str, Any]]
_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}


def chat_params(body: Mapping[str, Any], upstream_model: str) -> chat_pb2.ChatCompletionParams:
    """Chat params for an Anthropic body: system first, then each turn, tools and sampling."""
    params = chat_pb2.ChatCompletionParams(model=upstream_model, max_tokens=int(body.get("max_tokens") or 0))
    system = body.get("system")
    if system:
        params.messages.append(chat_pb2.ChatMessage(role="system", content=_text(system)))
    for turn in _list(body.get("messages"), "messages"):
        params.messages.extend(_turn(_object(turn, "messages")))
    for key in ("temperature", "top_p"):
        if isinstance(body.get(key), int | float):
            setattr(params, key, float(body[key]))
    params.stop.extend(str(stop) for stop in body.get("stop_sequences") or [])
    for tool in body.get("tools") or []:
        params.tools.append(_tool(_object(tool, "tools")))
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        kind = choice.get("type")
        if kind == "tool":
            params.tool_choice.function_name = str(choice.get("name", ""))
        else:
            params.tool_choice.mode = {"any": "required", "none": "none"}.get(str(kind), "auto")
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and metadata.get("user_id"):
        params.user = str(metadata["user_id"])
    return params


def message_from_completion(answer: relay_pb2.CreateChatCompletionResponse, model: str) -> dict[str, Any]:
    """An Anthropic `message` object of a whole chat answer."""
    choice = answer.choices[0] if answer.choices else chat_pb2.ChatChoice()
    content: list[dict[str, Any]] = []
    if choice.message.reasoning_content:
        content.append({"type": "thinking", "thinking": choice.message.reasoning_content, "signature": ""})
    if choice.message.content:
        content.append({"type": "text", "text": choice.message.content})
    for call in choice.message.tool_calls:
        content.append({"type": "tool_use", "id": call.id, "name": call.function.name, "input": _input(call)})
    return {
        "id": _message_id(answer.id),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": _STOP_REASONS.get(choice.finish_reason, "end_turn"),
        "stop_sequence": None,
        "usage": usage_json(answer.usage),
    }


def usage_json(usage: chat_pb2.Usage) -> dict[str, int]:
    """Anthropic usage of OpenAI usage: input excludes cache reads and writes."""
    read = usage.prompt_tokens_details.cached_tokens
    write = usage.prompt_tokens_details.cache_write_tokens
    return {
        "input_tokens": max(0, usage.prompt_tokens - read - write),
        "cache_read_input_tokens": read,
        "cache_creation_input_tokens": write,
        "output_tokens": usage.completion_tokens,
    }


class ChunkEvents:
    """Turns chat chunks into Anthropic's event sequence, one content block open at a time."""

    def __init__(self, model: str) -> None:
        self._model = model
        self._started = False
        self._block: tuple[str, int] | None = None
        """The open block: thinking, text or tool_use, with the tool call index (0 for the others)."""
        self._index = -1
        self._stop_reason = "end_turn"
        self._usage = chat_pb2.Usage()

    def feed(self, chunk: relay_pb2.StreamChatCompletionResponse) -> list[Event]:
        events = self._opening(chunk)
        if chunk.HasField("usage"):
            self._usage = chunk.usage
        for choice in chunk.choices[:1]:
            delta = choice.delta
            if delta.reasoning_content:
                events += self._ensure(("thinking", 0), {"type": "thinking", "thinking": "", "signature": ""})
                events.append(self._delta({"type": "thinking_delta", "thinking": delta.reasoning_content}))
            if delta.content:
                events += self._ensure(("text", 0), {"type": "text", "text": ""})
                events.append(self._delta({"type": "text_delta", "text": delta.content}))
            for call in delta.tool_calls:
                start = {"type": "tool_use", "id": call.id, "name": call.function.name, "input": {}}
                events += self._ensure(("tool_use", call.index), start)
                if call.function.arguments:
                    events.append(self._delta({"type": "input_json_delta", "partial_json": call.function.arguments}))
            if choice.finish_reason:
                self._stop_reason = _STOP_REASONS.get(choice.finish_reason, "end_turn")
        return events

    def finish(self) -> list[Event]:
        """The closing events, once the chat stream ended cleanly."""
        events = self._close()
        delta = {"stop_reason": self._stop_reason, "stop_sequence": None}
        events.append(("message_delta", {"type": "message_delta", "delta": delta, "usage": usage_json(self._usage)}))
        events.append(("message_stop", {"type": "message_stop"}))
        return events

    def _opening(self, chunk: relay_pb2.StreamChatCompletionResponse) -> list[Event]:
        if self._started:
            return []
        self._started = True
        message: dict[str, Any] = {
            "id": _message_id(chunk.id),
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return [("message_start", {"type": "message_start", "message": message}), ("ping", {"type": "ping"})]

    def _ensure(self, block: tuple[str, int], start: dict[str, Any]) -> list[Event]:
        if self._block == block:
            return []
        events = self._close()
        self._block, self._index = block, self._index + 1
        events.append(
            ("content_block_start", {"type": "content_block_start", "index": self._index, "content_block": start})
        )
        return events

    def _close(self) -> list[Event]:
        if self._block is None:
            return []
        self._block = None
        return [("content_block_stop", {"type": "content_block_stop", "index": self._index})]

    def _delta(self, delta: dict[str, Any]) -> Event:
        return "content_block_delta", {"type": "content_block_delta", "index": self._index, "delta": delta}


def _turn(turn: Mapping[str, Any]) -> list[chat_pb2.ChatMessage]:
    role = turn.get("role")
    if role not in ("user", "assistant"):
        raise InvalidArgumentError("each message's role must be user or assistant", param="messages")
    content = turn.get("content")
    if isinstance(content, str):
        return [chat_pb2.ChatMessage(role=str(role), content=content)]
    blocks = [_object(block, "messages") for block in _list(content, "messages.content")]
    if role == "assistant":
        return [_assistant(blocks)]
    results = [
        chat_pb2.ChatMessage(
            role="tool", tool_call_id=str(block.get("tool_use_id", "")), content=_text(block.get("content"))
        )
        for block in blocks
        if block.get("type") == "tool_result"
    ]
    parts = [part for block in blocks if (part := _user_part(block)) is not None]
    return [*results, *([chat_pb2.ChatMessage(role="user", content_parts=parts)] if parts else [])]


def _assistant(blocks: list[dict[str, Any]]) -> chat_pb2.ChatMessage:
    message = chat_pb2.ChatMessage(role="assistant")
    text = "".join(str(block.get("text", "")) for block in blocks if block.get("type") == "text")
    if text:
        message.content = text
    for block in blocks:
        if block.get("type") == "tool_use":
            arguments = json.dumps(block.get("input") or {}, separators=(",", ":"))
            call = chat_pb2.ToolCall(id=str(block.get("id", "")), type="function")
            call.function.name, call.function.arguments = str(block.get("name", "")), arguments
            message.tool_calls.append(call)
    return message


def _user_part(block: Mapping[str, Any]) -> chat_pb2.ContentPart | None:
    kind = block.get("type")
    if kind == "text":
        return chat_pb2.ContentPart(text=str(block.get("text", "")))
    if kind == "image":
        source = _object(block.get("source"), "messages.content.source")
        if source.get("type") == "url":
            url = str(source.get("url", ""))
        else:
            url = f"data:{source.get('media_type', '')};base64,{source.get('data', '')}"
        return chat_pb2.ContentPart(image_url=chat_pb2.ImageUrl(url=url))
    return None


def _tool(tool: Mapping[str, Any]) -> chat_pb2.Tool:
    function = chat_pb2.FunctionDefinition(name=str(tool.get("name", "")), description=str(tool.get("description", "")))
    schema = tool.get("input_schema")
    if isinstance(schema, dict):
        json_format.ParseDict(schema, function.parameters)
    return chat_pb2.Tool(type="function", function=function)


def _text(value: object) -> str:
    """A string, or the text of a list of blocks (system prompts and tool results)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(str(block.get("text", "")) for block in value if isinstance(block, dict))
    return ""


def _input(call: chat_pb2.ToolCall) -> Any:
    try:
        return json.loads(call.function.arguments or "{}")
    except ValueError:
        return {}


def _message_id(upstream_id: str) -> str:
    return upstream_id if upstream_id.startswith("msg_") else f"msg_{upstream_id}"


def _list(value: object, param: str) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidArgumentError(f"{param} must be a list", param=param)
    return value


def _object(value: object, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidArgumentError(f"{param} must hold objects", param=param)
    return value
