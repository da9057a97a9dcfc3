"""An OpenAI-shaped chat request as the body of Anthropic's POST /v1/messages (PROVIDERS.md §4).

System and developer messages, wherever they stand, are hoisted into `system`; same-role turns are
merged; tool calls become `tool_use` blocks and tool messages `tool_result` blocks opening one user
turn; images go as base64 or URL sources (Tollgate never fetches a URL). What has no Anthropic
equivalent is dropped when it is only a hint (`seed`, penalties, `logprobs`, `json_object`, a message
`name`, assistant `reasoning_content` whose signature is gone) and refused when dropping it would
change the answer (`n` > 1, audio, custom tools). `extra` holds unmodelled *OpenAI* fields and is
never sent to Anthropic.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from google.protobuf import struct_pb2
from tollgate.v1 import chat_pb2

from server.errors import InvalidArgumentError

Block = dict[str, Any]
Turn = dict[str, Any]

IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
# Only this version takes sampling parameters; 2026-10-21 answers 400 to any of them (PROVIDERS.md §3.1).
SAMPLING_VERSIONS = frozenset({"2023-06-01"})
# reasoning_effort → output_config.effort; "none" and "minimal" send no effort (the model's default).
EFFORTS: dict[str, str | None] = {
    "none": None,
    "minimal": None,
    **{effort: effort for effort in ("low", "medium", "high", "xhigh", "max")},
}
_TOOL_CHOICES = {"none": "none", "auto": "auto", "required": "any"}
_DATA_URL = re.compile(r"data:(?P<type>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)", re.DOTALL)


def to_anthropic_request(
    params: chat_pb2.ChatCompletionParams,
    *,
    upstream_model: str,
    max_tokens: int,
    stream: bool,
    api_version: str = "2023-06-01",
) -> dict[str, Any]:
    """The Messages body for a chat request; InvalidArgumentError (with `param`) when it cannot be said."""
    if params.HasField("n") and params.n > 1:
        raise InvalidArgumentError("Anthropic models answer with one choice per request", param="n")
    system, turns = _conversation(params.messages)
    body: dict[str, Any] = {"model": upstream_model, "max_tokens": max_tokens, "messages": turns, "stream": stream}
    if system:
        body["system"] = system
    if params.stop:
        body["stop_sequences"] = list(params.stop)
    if api_version in SAMPLING_VERSIONS:
        body.update(_sampling(params))
    if params.tools:
        body["tools"] = [_tool(tool, index) for index, tool in enumerate(params.tools)]
        choice = _tool_choice(params)
        if choice is not None:
            body["tool_choice"] = choice
    output_config = _output_config(params)
    if output_config:
        body["output_config"] = output_config
    if params.user:
        body["metadata"] = {"user_id": params.user}
    return body


def _conversation(messages: Iterable[chat_pb2.ChatMessage]) -> tuple[str, list[Turn]]:
    system: list[str] = []
    turns: list[Turn] = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if message.role in ("system", "developer"):
            system.append(_text_only(message, where))
            continue
        role, blocks = _turn(message, where)
        if not blocks:
            continue  # an empty message (e.g. a reasoning-only assistant turn): Anthropic refuses empty turns
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    if not turns:
        raise InvalidArgumentError("the conversation needs a user or assistant message with content", param="messages")
    for turn in turns:
        # tool_result blocks must open the user turn that follows the tool_use turn, any text after them
        turn["content"].sort(key=lambda block: block["type"] != "tool_result")
    return "\n\n".join(text for text in system if text), turns


def _turn(message: chat_pb2.ChatMessage, where: str) -> tuple[str, list[Block]]:
    if message.role == "user":
        return "user", _user_blocks(message, where)
    if message.role == "assistant":
        return "assistant", _assistant_blocks(message, where)
    if message.role == "tool":
        return "user", [_tool_result(message, where)]
    raise InvalidArgumentError(f"unknown message role {message.role!r}", param=f"{where}.role")


def _text_only(message: chat_pb2.ChatMessage, where: str) -> str:
    """The text of a system, developer or tool message, whose parts may only be text."""
    texts = [message.content] if message.HasField("content") else []
    for index, part in enumerate(message.content_parts):
        if part.WhichOneof("part") != "text":
            raise InvalidArgumentError(
                f"{message.role} messages may hold only text parts", param=f"{where}.content[{index}]"
            )
        texts.append(part.text)
    return "\n".join(texts)


def _user_blocks(message: chat_pb2.ChatMessage, where: str) -> list[Block]:
    blocks = [_text_block(message.content)] if message.HasField("content") else []
    blocks += [_user_part(part, f"{where}.content[{index}]") for index, part in enumerate(message.content_parts)]
    return [block for block in blocks if block]


def _user_part(part: chat_pb2.ContentPart, where: str) -> Block:
    kind = part.WhichOneof("part")
    if kind == "text":
        return _text_block(part.text)
    if kind == "image_url":
        return {"type": "image", "source": _image_source(part.image_url.url, where)}  # `detail` has no equivalent
    if kind == "file":
        return _document(part.file, where)
    if kind == "input_audio":
        raise InvalidArgumentError("Anthropic models take no audio input", param=where)
    raise InvalidArgumentError(f"this content part ({kind}) cannot go to an Anthropic model", param=where)


def _text_block(text: str) -> Block:
    return {"type": "text", "text": text} if text else {}  # Anthropic refuses empty text blocks


def _image_source(url: str, where: str) -> Block:
    found = _DATA_URL.fullmatch(url)
    if found is not None:
        if found["type"] not in IMAGE_TYPES:
            raise InvalidArgumentError(
                f"images must be one of {', '.join(sorted(IMAGE_TYPES))}, not {found['type']}", param=where
            )
        return {"type": "base64", "media_type": found["type"], "data": found["data"]}
    if url.startswith(("https://", "http://")):
        return {"type": "url", "url": url}
    raise InvalidArgumentError("an image must be an http(s) URL or a base64 data URL", param=where)


def _document(file: chat_pb2.FilePart, where: str) -> Block:
    found = _DATA_URL.fullmatch(file.file_data)
    if found is None or found["type"] != "application/pdf":
        raise InvalidArgumentError("files must be PDFs given inline as base64 data URLs", param=where)
    return {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": found["data"]}}


def _assistant_blocks(message: chat_pb2.ChatMessage, where: str) -> list[Block]:
    texts = [message.content] if message.HasField("content") else []
    for index, part in enumerate(message.content_parts):
        kind = part.WhichOneof("part")
        if kind not in ("text", "refusal"):
            raise InvalidArgumentError("assistant messages may hold only text", param=f"{where}.content[{index}]")
        texts.append(part.text if kind == "text" else part.refusal)
    if message.HasField("refusal"):
        texts.append(message.refusal)
    blocks = [_text_block("".join(texts))]
    blocks += [_tool_use(call, f"{where}.tool_calls[{index}]") for index, call in enumerate(message.tool_calls)]
    return [block for block in blocks if block]


def _tool_use(call: chat_pb2.ToolCall, where: str) -> Block:
    if call.type not in ("", "function"):
        raise InvalidArgumentError("only function tool calls can go to an Anthropic model", param=f"{where}.type")
    try:
        arguments = json.loads(call.function.arguments or "{}")
    except ValueError:
        arguments = None  # refused just below, like any non-object
    if not isinstance(arguments, dict):
        raise InvalidArgumentError("tool call arguments must be a JSON object", param=f"{where}.function.arguments")
    return {"type": "tool_use", "id": call.id, "name": call.function.name, "input": arguments}


def _tool_result(message: chat_pb2.ChatMessage, where: str) -> Block:
    if not message.tool_call_id:
        raise InvalidArgumentError("a tool message needs the tool_call_id it answers", param=f"{where}.tool_call_id")
    block: Block = {"type": "tool_result", "tool_use_id": message.tool_call_id}
    text = _text_only(message, where)
    if text:
        block["content"] = text
    return block


def _sampling(params: chat_pb2.ChatCompletionParams) -> dict[str, float]:
    sampling = {}
    if params.HasField("temperature"):
        sampling["temperature"] = min(max(params.temperature, 0.0), 1.0)  # OpenAI allows up to 2
    if params.HasField("top_p"):
        sampling["top_p"] = params.top_p
    return sampling


def _tool(tool: chat_pb2.Tool, index: int) -> Block:
    if tool.type != "function" or not tool.HasField("function"):
        raise InvalidArgumentError("only function tools can go to an Anthropic model", param=f"tools[{index}]")
    function = tool.function
    schema = _json(function.parameters) if function.HasField("parameters") else {}
    converted: Block = {"name": function.name, "input_schema": schema or {"type": "object"}}
    if function.description:
        converted["description"] = function.description
    if function.HasField("strict"):
        converted["strict"] = function.strict
    return converted


def _tool_choice(params: chat_pb2.ChatCompletionParams) -> Block | None:
    kind = params.tool_choice.WhichOneof("choice")
    choice: Block | None = None
    if kind == "function_name":
        choice = {"type": "tool", "name": params.tool_choice.function_name}
    elif kind == "mode" and params.tool_choice.mode in _TOOL_CHOICES:
        choice = {"type": _TOOL_CHOICES[params.tool_choice.mode]}
    elif kind is not None:
        raise InvalidArgumentError("this tool_choice has no Anthropic equivalent", param="tool_choice")
    if params.HasField("parallel_tool_calls") and not params.parallel_tool_calls:
        choice = choice or {"type": "auto"}
        if choice["type"] != "none":
            choice["disable_parallel_tool_use"] = True
    return choice


def _output_config(params: chat_pb2.ChatCompletionParams) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if params.reasoning_effort:
        if params.reasoning_effort not in EFFORTS:
            raise InvalidArgumentError(
                f"unknown reasoning_effort {params.reasoning_effort!r}", param="reasoning_effort"
            )
        if EFFORTS[params.reasoning_effort] is not None:
            config["effort"] = EFFORTS[params.reasoning_effort]
    kind = params.response_format.type
    # json_object has no Anthropic equivalent and is dropped: the prompt itself must ask for JSON.
    if kind == "json_schema":
        if not params.response_format.json_schema.HasField("schema"):
            raise InvalidArgumentError("a json_schema response format needs a schema", param="response_format")
        config["format"] = {"type": "json_schema", "schema": _json(params.response_format.json_schema.schema)}
    elif kind not in ("", "text", "json_object"):
        raise InvalidArgumentError(f"unknown response_format type {kind!r}", param="response_format.type")
    return config


def _json(struct: struct_pb2.Struct) -> dict[str, Any]:
    """A Struct as plain JSON; integral numbers come back as ints (`"maxItems": 3`, not 3.0)."""
    return {key: _value(value) for key, value in struct.fields.items()}


def _value(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        return _json(value.struct_value)
    if kind == "list_value":
        return [_value(item) for item in value.list_value.values]
    if kind == "number_value":
        number = value.number_value
        return int(number) if number.is_integer() and abs(number) < 2**53 else number
    if kind == "null_value" or kind is None:
        return None
    return getattr(value, kind)
