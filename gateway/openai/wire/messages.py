"""Chat messages, content parts and tool calls: OpenAI JSON ⇄ tollgate.v1 messages.

A content part is modelled only when the model reproduces it exactly; any other part (an unknown type, an
extra key such as `cache_control`, a null) is kept verbatim in `ContentPart.other`, so nothing is lost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tollgate.v1 import chat_pb2

from gateway.openai.wire.values import (
    WireError,
    as_dict,
    as_list,
    as_str,
    join,
    struct_from_json,
    struct_to_json,
    value_error,
)

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


def message_from_json(message: chat_pb2.ChatMessage, value: object, path: str, *, request: bool = True) -> None:
    """Fill `message`. A request message must have a known role and no unmodelled key holding a value
    (there is nowhere to keep it, and dropping it silently would change the request); a response message
    defaults to the assistant role and its unmodelled keys (`annotations`, `audio`) are ignored."""
    obj = as_dict(value, path)
    role = obj.get("role")
    if request and (not isinstance(role, str) or role not in ROLES):
        value_error(f"'role' must be one of {', '.join(sorted(ROLES))}.", join(path, "role"))
    message.role = as_str(role, join(path, "role")) if role is not None else "assistant"
    for key, item in obj.items():
        if item is None or key == "role":
            continue
        reader = _MESSAGE_READERS.get(key)
        if reader is not None:
            reader(message, item, join(path, key))
        elif request and item not in ([], {}):
            raise WireError(f"Unsupported field '{join(path, key)}': this relay cannot pass it on.", join(path, key))


def _content(message: chat_pb2.ChatMessage, value: object, path: str) -> None:
    if isinstance(value, str):
        message.content = as_str(value, path)
        return
    parts = message.content_parts
    for index, item in enumerate(as_list(value, path)):
        part_from_json(parts.add(), item, join(path, index))


def _name(message: chat_pb2.ChatMessage, value: object, path: str) -> None:
    message.name = as_str(value, path)


def _tool_calls(message: chat_pb2.ChatMessage, value: object, path: str) -> None:
    calls = message.tool_calls
    for index, item in enumerate(as_list(value, path)):
        tool_call_from_json(calls.add(), item, join(path, index))


def _tool_call_id(message: chat_pb2.ChatMessage, value: object, path: str) -> None:
    message.tool_call_id = as_str(value, path)


def _reasoning_content(message: chat_pb2.ChatMessage, value: object, path: str) -> None:
    message.reasoning_content = as_str(value, path)


def _refusal(message: chat_pb2.ChatMessage, value: object, path: str) -> None:
    message.refusal = as_str(value, path)


_MESSAGE_READERS: dict[str, Callable[[chat_pb2.ChatMessage, object, str], None]] = {
    "content": _content,
    "name": _name,
    "tool_calls": _tool_calls,
    "tool_call_id": _tool_call_id,
    "reasoning_content": _reasoning_content,
    "refusal": _refusal,
}


def message_to_json(message: chat_pb2.ChatMessage) -> dict[str, Any]:
    """OpenAI's message object; `content` is always present (null when the message has none)."""
    out: dict[str, Any] = {"role": message.role, "content": content_to_json(message)}
    if message.name:
        out["name"] = message.name
    if message.tool_calls:
        out["tool_calls"] = [tool_call_to_json(call) for call in message.tool_calls]
    if message.tool_call_id:
        out["tool_call_id"] = message.tool_call_id
    if message.HasField("reasoning_content"):
        out["reasoning_content"] = message.reasoning_content
    if message.HasField("refusal"):
        out["refusal"] = message.refusal
    return out


def content_to_json(message: chat_pb2.ChatMessage) -> str | list[dict[str, Any]] | None:
    if message.HasField("content"):
        return message.content
    if message.content_parts:
        return [part_to_json(part) for part in message.content_parts]
    return None


def part_from_json(part: chat_pb2.ContentPart, value: object, path: str) -> None:
    """Validate a part's known shape, then model it, or keep it verbatim when the model would change it."""
    obj = as_dict(value, path)
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise WireError(f"Missing or invalid 'type' in content part '{path}'.", join(path, "type"))
    reader = _PART_READERS.get(kind)
    if reader is None or not reader(part, obj, path):
        part.ClearField("part")
        struct_from_json(part.other, obj, path)


def _text_part(part: chat_pb2.ContentPart, obj: dict[str, Any], path: str) -> bool:
    part.text = as_str(obj.get("text"), join(path, "text"))
    return len(obj) == 2


def _refusal_part(part: chat_pb2.ContentPart, obj: dict[str, Any], path: str) -> bool:
    part.refusal = as_str(obj.get("refusal"), join(path, "refusal"))
    return len(obj) == 2


def _image_url_part(part: chat_pb2.ContentPart, obj: dict[str, Any], path: str) -> bool:
    path = join(path, "image_url")
    image = as_dict(obj.get("image_url"), path)
    part.image_url.url = as_str(image.get("url"), join(path, "url"))
    detail = image.get("detail")
    if detail is not None:
        part.image_url.detail = as_str(detail, join(path, "detail"))
    return len(obj) == 2 and len(image) == (1 if detail is None else 2) and detail != ""


def _input_audio_part(part: chat_pb2.ContentPart, obj: dict[str, Any], path: str) -> bool:
    path = join(path, "input_audio")
    audio = as_dict(obj.get("input_audio"), path)
    part.input_audio.data = as_str(audio.get("data"), join(path, "data"))
    part.input_audio.format = as_str(audio.get("format"), join(path, "format"))
    return len(obj) == 2 and len(audio) == 2


def _file_part(part: chat_pb2.ContentPart, obj: dict[str, Any], path: str) -> bool:
    path = join(path, "file")
    file = as_dict(obj.get("file"), path)
    exact = len(obj) == 2
    target = part.file
    target.SetInParent()
    for key, item in file.items():
        if key not in ("file_data", "file_id", "filename"):
            exact = False
        elif item is not None:
            setattr(target, key, as_str(item, join(path, key)))
        exact = exact and bool(item)
    return exact


_PART_READERS: dict[str, Callable[[chat_pb2.ContentPart, dict[str, Any], str], bool]] = {
    "text": _text_part,
    "refusal": _refusal_part,
    "image_url": _image_url_part,
    "input_audio": _input_audio_part,
    "file": _file_part,
}


def part_to_json(part: chat_pb2.ContentPart) -> dict[str, Any]:
    kind = part.WhichOneof("part")
    if kind == "text":
        return {"type": "text", "text": part.text}
    if kind == "image_url":
        image: dict[str, str] = {"url": part.image_url.url}
        if part.image_url.detail:
            image["detail"] = part.image_url.detail
        return {"type": "image_url", "image_url": image}
    if kind == "input_audio":
        return {
            "type": "input_audio",
            "input_audio": {"data": part.input_audio.data, "format": part.input_audio.format},
        }
    if kind == "file":
        file = part.file
        fields = (("file_data", file.file_data), ("file_id", file.file_id), ("filename", file.filename))
        return {"type": "file", "file": {key: item for key, item in fields if item}}
    if kind == "refusal":
        return {"type": "refusal", "refusal": part.refusal}
    return struct_to_json(part.other)


def tool_call_from_json(call: chat_pb2.ToolCall, value: object, path: str) -> None:
    """A function tool call; other call types (`custom`) have no model and are refused. Unknown keys of a
    call (an `index` left over from accumulating a stream) are ignored."""
    obj = as_dict(value, path)
    call_id, kind, function = obj.get("id"), obj.get("type"), obj.get("function")
    if call_id is not None:
        call.id = as_str(call_id, join(path, "id"))
    if kind is not None:
        if kind != "function":
            value_error("only 'function' tool calls can be relayed.", join(path, "type"))
        call.type = "function"
    if function is not None:
        _function_call(call.function, function, join(path, "function"))


def _function_call(function: chat_pb2.FunctionCall, value: object, path: str) -> None:
    obj = as_dict(value, path)
    name, arguments = obj.get("name"), obj.get("arguments")
    if name is not None:
        function.name = as_str(name, join(path, "name"))
    if arguments is not None:
        function.arguments = as_str(arguments, join(path, "arguments"))


def tool_call_to_json(call: chat_pb2.ToolCall) -> dict[str, Any]:
    """A whole tool call, as in a request or a unary response (no `index`)."""
    function = {"name": call.function.name, "arguments": call.function.arguments}
    return {"id": call.id, "type": call.type or "function", "function": function}
