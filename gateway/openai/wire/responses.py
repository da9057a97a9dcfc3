"""Chat answers: OpenAI's `chat.completion`, `chat.completion.chunk` and usage JSON ⇄ tollgate.v1 messages.

Upstream bodies are read leniently (unmodelled keys such as `service_tier`, `annotations` or `obfuscation`
are ignored, nulls mean unset) but a value of the wrong type still raises WireError. Output follows the
openai SDK's models: a choice always has `finish_reason` (null until set) and `logprobs: null`, a unary
message always has `content` and `refusal`, a chunk always has `usage` (null except on the usage chunk).
"""

from __future__ import annotations

import math
from typing import Any

from tollgate.v1 import chat_pb2, relay_pb2

from gateway.openai.wire.messages import message_from_json, message_to_json
from gateway.openai.wire.values import INT64_MAX, as_dict, as_int, as_list, as_str, join, str_or_empty, token_count

_Answer = relay_pb2.CreateChatCompletionResponse | relay_pb2.StreamChatCompletionResponse


def completion_from_json(body: object) -> relay_pb2.CreateChatCompletionResponse:
    obj = as_dict(body, "")
    response = relay_pb2.CreateChatCompletionResponse()
    _read_header(response, obj)
    choices = response.choices
    for index, item in enumerate(_list_or_empty(obj.get("choices"), "choices")):
        _read_choice(choices.add(), item, join("choices", index))
    _read_usage(response, obj.get("usage"))
    return response


def _read_choice(choice: chat_pb2.ChatChoice, value: object, path: str) -> None:
    obj = as_dict(value, path)
    choice.index = _index(obj.get("index"), join(path, "index"))
    message = obj.get("message")
    message_from_json(choice.message, {} if message is None else message, join(path, "message"), request=False)
    choice.finish_reason = str_or_empty(obj.get("finish_reason"), join(path, "finish_reason"))


def completion_to_json(response: relay_pb2.CreateChatCompletionResponse) -> dict[str, Any]:
    out = _header_to_json(response, "chat.completion")
    out["choices"] = [
        {
            "index": choice.index,
            "message": _answer_message_to_json(choice.message),
            "finish_reason": choice.finish_reason or None,
            "logprobs": None,
        }
        for choice in response.choices
    ]
    if response.HasField("usage"):
        out["usage"] = usage_to_json(response.usage)
    return out


def _answer_message_to_json(message: chat_pb2.ChatMessage) -> dict[str, Any]:
    out = message_to_json(message)
    out["role"] = message.role or "assistant"
    out.setdefault("refusal", None)
    return out


def chunk_from_json(body: object) -> relay_pb2.StreamChatCompletionResponse:
    obj = as_dict(body, "")
    chunk = relay_pb2.StreamChatCompletionResponse()
    _read_header(chunk, obj)
    choices = chunk.choices
    for index, item in enumerate(_list_or_empty(obj.get("choices"), "choices")):
        _read_chunk_choice(choices.add(), item, join("choices", index))
    _read_usage(chunk, obj.get("usage"))
    return chunk


def _read_chunk_choice(choice: chat_pb2.ChatChunkChoice, value: object, path: str) -> None:
    obj = as_dict(value, path)
    choice.index = _index(obj.get("index"), join(path, "index"))
    delta = obj.get("delta")
    if delta is not None:
        _read_delta(choice.delta, delta, join(path, "delta"))
    choice.finish_reason = str_or_empty(obj.get("finish_reason"), join(path, "finish_reason"))


def _read_delta(delta: chat_pb2.ChatDelta, value: object, path: str) -> None:
    obj = as_dict(value, path)
    delta.SetInParent()
    for key in ("role", "content", "reasoning_content", "refusal"):
        item = obj.get(key)
        if item is not None:
            setattr(delta, key, as_str(item, join(path, key)))
    calls = delta.tool_calls
    for index, item in enumerate(_list_or_empty(obj.get("tool_calls"), join(path, "tool_calls"))):
        _read_call_delta(calls.add(), item, join(join(path, "tool_calls"), index))


def _read_call_delta(call: chat_pb2.ToolCall, value: object, path: str) -> None:
    obj = as_dict(value, path)
    call.index = _index(obj.get("index"), join(path, "index"))
    call.id = str_or_empty(obj.get("id"), join(path, "id"))
    call.type = str_or_empty(obj.get("type"), join(path, "type"))
    function = obj.get("function")
    if function is not None:
        path = join(path, "function")
        function = as_dict(function, path)
        call.function.name = str_or_empty(function.get("name"), join(path, "name"))
        call.function.arguments = str_or_empty(function.get("arguments"), join(path, "arguments"))


def chunk_to_json(chunk: relay_pb2.StreamChatCompletionResponse) -> dict[str, Any]:
    out = _header_to_json(chunk, "chat.completion.chunk")
    out["choices"] = [
        {
            "index": choice.index,
            "delta": _delta_to_json(choice.delta),
            "finish_reason": choice.finish_reason or None,
            "logprobs": None,
        }
        for choice in chunk.choices
    ]
    out["usage"] = usage_to_json(chunk.usage) if chunk.HasField("usage") else None
    return out


def _delta_to_json(delta: chat_pb2.ChatDelta) -> dict[str, Any]:
    """Only what the chunk adds: the SDK concatenates every repeated string, so nothing is sent twice."""
    out: dict[str, Any] = {}
    if delta.role:
        out["role"] = delta.role
    if delta.HasField("content"):
        out["content"] = delta.content
    if delta.HasField("reasoning_content"):
        out["reasoning_content"] = delta.reasoning_content
    if delta.HasField("refusal"):
        out["refusal"] = delta.refusal
    if delta.tool_calls:
        out["tool_calls"] = [_call_delta_to_json(call) for call in delta.tool_calls]
    return out


def _call_delta_to_json(call: chat_pb2.ToolCall) -> dict[str, Any]:
    out: dict[str, Any] = {"index": call.index}
    if call.id:
        out["id"] = call.id
    if call.type:
        out["type"] = call.type
    name, arguments = call.function.name, call.function.arguments
    if name:
        # The first delta of a call carries its name and `arguments: ""`, as OpenAI sends it.
        out["function"] = {"name": name, "arguments": arguments}
    elif arguments:
        out["function"] = {"arguments": arguments}
    return out


def usage_from_json(value: object) -> chat_pb2.Usage:
    """Usage as reported; never raises (see `token_count` for hostile counts).
    DeepSeek's `prompt_cache_hit_tokens` stands in for `prompt_tokens_details.cached_tokens` when that is absent.
    """
    usage = chat_pb2.Usage()
    if isinstance(value, dict):
        _fill_usage(usage, value)
    return usage


def _fill_usage(usage: chat_pb2.Usage, obj: dict[str, Any]) -> None:
    usage.prompt_tokens = token_count(obj.get("prompt_tokens"))
    usage.completion_tokens = token_count(obj.get("completion_tokens"))
    total = obj.get("total_tokens")
    usage.total_tokens = usage.prompt_tokens + usage.completion_tokens if total is None else token_count(total)
    prompt_details = obj.get("prompt_tokens_details")
    prompt_details = prompt_details if isinstance(prompt_details, dict) else {}
    cached = prompt_details.get("cached_tokens")
    usage.prompt_tokens_details.cached_tokens = token_count(
        obj.get("prompt_cache_hit_tokens") if cached is None else cached
    )
    usage.prompt_tokens_details.cache_write_tokens = token_count(prompt_details.get("cache_write_tokens"))
    completion_details = obj.get("completion_tokens_details")
    reasoning = completion_details.get("reasoning_tokens") if isinstance(completion_details, dict) else None
    usage.completion_tokens_details.reasoning_tokens = token_count(reasoning)


def usage_to_json(usage: chat_pb2.Usage) -> dict[str, Any]:
    prompt_details: dict[str, int] = {"cached_tokens": usage.prompt_tokens_details.cached_tokens}
    if usage.prompt_tokens_details.cache_write_tokens:
        prompt_details["cache_write_tokens"] = usage.prompt_tokens_details.cache_write_tokens
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": prompt_details,
        "completion_tokens_details": {"reasoning_tokens": usage.completion_tokens_details.reasoning_tokens},
    }


def _read_header(answer: _Answer, obj: dict[str, Any]) -> None:
    answer.id = str_or_empty(obj.get("id"), "id")
    answer.object = str_or_empty(obj.get("object"), "object")
    answer.model = str_or_empty(obj.get("model"), "model")
    answer.system_fingerprint = str_or_empty(obj.get("system_fingerprint"), "system_fingerprint")
    created = obj.get("created")
    if isinstance(created, float) and math.isfinite(created):
        created = int(created)  # some compatible upstreams send fractional seconds
    if created is not None:
        answer.created = as_int(created, "created", 0, INT64_MAX)


def _read_usage(answer: _Answer, value: object) -> None:
    if isinstance(value, dict):
        _fill_usage(answer.usage, value)


def _header_to_json(answer: _Answer, kind: str) -> dict[str, Any]:
    out: dict[str, Any] = {"id": answer.id, "object": answer.object or kind, "created": answer.created}
    out["model"] = answer.model
    if answer.system_fingerprint:
        out["system_fingerprint"] = answer.system_fingerprint
    return out


def _index(value: object, path: str) -> int:
    return 0 if value is None else as_int(value, path)


def _list_or_empty(value: object, path: str) -> list[Any]:
    return [] if value is None else as_list(value, path)
