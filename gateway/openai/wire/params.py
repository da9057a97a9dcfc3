"""The body of POST /v1/chat/completions: OpenAI JSON ⇄ tollgate.v1.ChatCompletionParams.

Round trip: `params_to_json(params_from_json(body)) == body` for any valid body without `stream`, except:
a string `stop` becomes a one-element list; a modelled key holding null is dropped (null means unset); in
a message, an empty `tool_calls` list and null-or-empty unmodelled keys (`audio: null`, `annotations: []`)
are dropped, an empty content list becomes null and absent content `content: null`; a tool call without
`type` gets `"type": "function"`; an integral float inside an object kept verbatim (tool `parameters`,
`extra`) comes back as an int.

Unmodelled top-level keys go to `extra` verbatim and come back merged at the top level; a value we model
but cannot reproduce exactly (`stream_options.include_obfuscation`, an unknown `response_format` type,
`user: ""`, `stop: []`) is modelled as far as it goes *and* kept whole in `extra`, the modelled fields
winning on the way out. Tools follow the same rule with `Tool.other`, content parts with
`ContentPart.other`; `tool_choice` objects other than a named function go to `ToolChoice.other`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, get_args

from tollgate.v1 import chat_pb2

from gateway.openai.wire.messages import message_from_json, message_to_json
from gateway.openai.wire.values import (
    INT32_MAX,
    INT64_MAX,
    UPSTREAM_KEYS,
    WireError,
    as_bool,
    as_dict,
    as_int,
    as_list,
    as_number,
    as_str,
    join,
    merge_under,
    refuse_upstream_key,
    struct_from_json,
    struct_to_json,
)

# Said by the RPC chosen (unary or stream), not by the parameters.
NOT_PARAMS = frozenset({"stream"})

Reader = Callable[[chat_pb2.ChatCompletionParams, Any, str], bool]


def params_from_json(body: object) -> chat_pb2.ChatCompletionParams:
    """Decode a chat completion request body; any shape OpenAI would not accept raises WireError."""
    obj = as_dict(body, "")
    params = chat_pb2.ChatCompletionParams()
    kept: dict[str, Any] = {}
    for key, value in obj.items():
        reader = _READERS.get(key)
        if reader is None:
            refuse_upstream_key(key)
            if key not in NOT_PARAMS:
                kept[key] = value
        elif value is not None and not reader(params, value, key):
            kept[key] = value
    for required in ("model", "messages"):
        if obj.get(required) is None:
            raise WireError(f"Missing required parameter: '{required}'.", required)
    if kept:
        struct_from_json(params.extra, kept, "")
    return params


def _model(params: chat_pb2.ChatCompletionParams, value: Any, path: str) -> bool:
    params.model = as_str(value, path)
    return True


def _messages(params: chat_pb2.ChatCompletionParams, value: Any, path: str) -> bool:
    messages = params.messages
    for index, item in enumerate(as_list(value, path)):
        message_from_json(messages.add(), item, join(path, index))
    return True


def _stop(params: chat_pb2.ChatCompletionParams, value: Any, path: str) -> bool:
    if isinstance(value, str):
        params.stop.append(as_str(value, path))
    else:
        params.stop.extend(as_str(item, join(path, index)) for index, item in enumerate(as_list(value, path)))
    return bool(value)


def _tools(params: chat_pb2.ChatCompletionParams, value: Any, path: str) -> bool:
    tools = params.tools
    for index, item in enumerate(as_list(value, path)):
        tool_from_json(tools.add(), item, join(path, index))
    return bool(value)


def tool_from_json(tool: chat_pb2.Tool, value: object, path: str) -> None:
    """A function tool is modelled; a tool the model cannot reproduce is also kept whole in `other`."""
    obj = as_dict(value, path)
    tool.type = as_str(obj.get("type"), join(path, "type"))
    exact = False
    if tool.type == "function":
        exact = _function_definition(tool.function, obj.get("function"), join(path, "function")) and len(obj) == 2
    if not exact:
        struct_from_json(tool.other, obj, path)


def _function_definition(function: chat_pb2.FunctionDefinition, value: object, path: str) -> bool:
    obj = as_dict(value, path)
    function.name = as_str(obj.get("name"), join(path, "name"))
    exact = True
    for key, item in obj.items():
        if key == "description" and item is not None:
            function.description = as_str(item, join(path, key))
            exact = exact and bool(item)
        elif key == "parameters" and item is not None:
            struct_from_json(function.parameters, item, join(path, key))
        elif key == "strict" and item is not None:
            function.strict = as_bool(item, join(path, key))
        elif key != "name":
            exact = False
    return exact


def _tool_choice(params: chat_pb2.ChatCompletionParams, value: Any, path: str) -> bool:
    choice = params.tool_choice
    if isinstance(value, str):
        choice.mode = as_str(value, path)
        return True
    obj = as_dict(value, path)
    function = obj.get("function")
    if obj.get("type") == "function" and len(obj) == 2 and isinstance(function, dict) and len(function) == 1:
        choice.function_name = as_str(function.get("name"), join(path, "function.name"))
    else:
        struct_from_json(choice.other, obj, path)
    return True


def _response_format(params: chat_pb2.ChatCompletionParams, value: Any, path: str) -> bool:
    obj = as_dict(value, path)
    response_format = params.response_format
    response_format.type = as_str(obj.get("type"), join(path, "type"))
    schema = obj.get("json_schema")
    exact = len(obj) == (1 if schema is None else 2)
    if schema is not None:
        exact = _json_schema(response_format.json_schema, schema, join(path, "json_schema")) and exact
    return exact


def _json_schema(target: chat_pb2.JsonSchemaFormat, value: object, path: str) -> bool:
    obj = as_dict(value, path)
    exact = True
    for key, item in obj.items():
        if item is None:
            exact = False
        elif key == "name" or key == "description":
            setattr(target, key, as_str(item, join(path, key)))
            exact = exact and bool(item)
        elif key == "schema":
            struct_from_json(target.schema, item, join(path, key))
        elif key == "strict":
            target.strict = as_bool(item, join(path, key))
        else:
            exact = False
    target.SetInParent()
    return exact


def _stream_options(params: chat_pb2.ChatCompletionParams, value: Any, path: str) -> bool:
    obj = as_dict(value, path)
    params.stream_options.SetInParent()
    include_usage = obj.get("include_usage")
    if include_usage is not None:
        params.stream_options.include_usage = as_bool(include_usage, join(path, "include_usage"))
    return len(obj) == (0 if include_usage is None else 1)


def _int_reader(name: str, minimum: int, maximum: int = INT32_MAX) -> Reader:
    def read(params: chat_pb2.ChatCompletionParams, value: Any, path: str) -> bool:
        setattr(params, name, as_int(value, path, minimum, maximum))
        return True

    return read


def _number_reader(name: str) -> Reader:
    def read(params: chat_pb2.ChatCompletionParams, value: Any, path: str) -> bool:
        setattr(params, name, as_number(value, path))
        return True

    return read


def _str_reader(name: str) -> Reader:
    def read(params: chat_pb2.ChatCompletionParams, value: Any, path: str) -> bool:
        setattr(params, name, as_str(value, path))
        return bool(value)

    return read


def _bool_reader(name: str) -> Reader:
    def read(params: chat_pb2.ChatCompletionParams, value: Any, path: str) -> bool:
        setattr(params, name, as_bool(value, path))
        return True

    return read


_READERS: dict[str, Reader] = {
    "model": _model,
    "messages": _messages,
    "max_tokens": _int_reader("max_tokens", 0),
    "max_completion_tokens": _int_reader("max_completion_tokens", 0),
    "temperature": _number_reader("temperature"),
    "top_p": _number_reader("top_p"),
    "n": _int_reader("n", 1),
    "stop": _stop,
    "tools": _tools,
    "tool_choice": _tool_choice,
    "parallel_tool_calls": _bool_reader("parallel_tool_calls"),
    "response_format": _response_format,
    "seed": _int_reader("seed", -INT64_MAX - 1, INT64_MAX),
    "user": _str_reader("user"),
    "stream_options": _stream_options,
    "reasoning_effort": _str_reader("reasoning_effort"),
    "presence_penalty": _number_reader("presence_penalty"),
    "frequency_penalty": _number_reader("frequency_penalty"),
    "logprobs": _bool_reader("logprobs"),
    "top_logprobs": _int_reader("top_logprobs", 0),
}
_OptionalScalar = Literal[
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "n",
    "parallel_tool_calls",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "logprobs",
    "top_logprobs",
]
_OPTIONAL_SCALARS: tuple[_OptionalScalar, ...] = get_args(_OptionalScalar)


def params_to_json(params: chat_pb2.ChatCompletionParams) -> dict[str, Any]:
    """The body an OpenAI-compatible upstream expects (without `stream`, which the caller sets).

    `extra` is merged back at the top level, modelled fields winning; keys that choose the upstream and
    `stream` are never taken from `extra`, whoever filled it.
    """
    out: dict[str, Any] = {"model": params.model, "messages": [message_to_json(m) for m in params.messages]}
    for name in _OPTIONAL_SCALARS:
        if params.HasField(name):
            out[name] = getattr(params, name)
    if params.stop:
        out["stop"] = list(params.stop)
    if params.tools:
        out["tools"] = [tool_to_json(tool) for tool in params.tools]
    tool_choice = _tool_choice_to_json(params.tool_choice)
    if tool_choice is not None:
        out["tool_choice"] = tool_choice
    if params.HasField("response_format"):
        out["response_format"] = _response_format_to_json(params.response_format)
    if params.user:
        out["user"] = params.user
    if params.HasField("stream_options"):
        out["stream_options"] = {"include_usage": params.stream_options.include_usage}
    if params.reasoning_effort:
        out["reasoning_effort"] = params.reasoning_effort
    if params.HasField("extra"):
        kept = struct_to_json(params.extra)
        for key in UPSTREAM_KEYS | NOT_PARAMS:
            kept.pop(key, None)
        out = merge_under(kept, out)
    return out


def tool_to_json(tool: chat_pb2.Tool) -> dict[str, Any]:
    if tool.HasField("other"):
        return struct_to_json(tool.other)
    function = tool.function
    definition: dict[str, Any] = {"name": function.name}
    if function.description:
        definition["description"] = function.description
    if function.HasField("parameters"):
        definition["parameters"] = struct_to_json(function.parameters)
    if function.HasField("strict"):
        definition["strict"] = function.strict
    return {"type": tool.type, "function": definition}


def _tool_choice_to_json(choice: chat_pb2.ToolChoice) -> str | dict[str, Any] | None:
    kind = choice.WhichOneof("choice")
    if kind == "mode":
        return choice.mode
    if kind == "function_name":
        return {"type": "function", "function": {"name": choice.function_name}}
    if kind == "other":
        return struct_to_json(choice.other)
    return None


def _response_format_to_json(response_format: chat_pb2.ResponseFormat) -> dict[str, Any]:
    out: dict[str, Any] = {"type": response_format.type}
    if response_format.HasField("json_schema"):
        source = response_format.json_schema
        schema: dict[str, Any] = {}
        if source.name:
            schema["name"] = source.name
        if source.description:
            schema["description"] = source.description
        if source.HasField("schema"):
            schema["schema"] = struct_to_json(source.schema)
        if source.HasField("strict"):
            schema["strict"] = source.strict
        out["json_schema"] = schema
    return out
