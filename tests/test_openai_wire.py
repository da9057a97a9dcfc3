"""The OpenAI wire codec: chat request bodies both ways, their validation, and hostile input."""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import pytest
from tollgate.v1 import chat_pb2, relay_pb2

from gateway.openai.wire import WireError, params_from_json, params_to_json
from gateway.openai.wire.values import MAX_STRUCT_DEPTH, struct_to_json
from tests.support.wire_fuzz import decode_mutations

WEATHER_PARAMETERS = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "description": "City name"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 14},
        "hourly": {"type": "boolean"},
    },
    "required": ["city"],
    "additionalProperties": False,
}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": WEATHER_PARAMETERS,
        "strict": True,
    },
}
TOOL_CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}
PNG = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"

CORPUS: dict[str, dict[str, Any]] = {
    "text": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]},
    "system_developer": {
        "model": "gpt-5",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}], "name": "ops"},
            {"role": "user", "content": "Hi", "name": "alice"},
        ],
        "max_completion_tokens": 512,
        "temperature": 0.2,
        "top_p": 0.9,
        "n": 2,
        "seed": -9007199254740993,
        "user": "user-42",
        "presence_penalty": -0.5,
        "frequency_penalty": 1.5,
        "logprobs": True,
        "top_logprobs": 3,
        "max_tokens": 0,
    },
    "multipart_user": {
        "model": "gpt-4o",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in these?"},
                    {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                    {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
                    {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"}},
                    {"type": "file", "file": {"file_id": "file-abc"}},
                ],
            }
        ],
    },
    "tool_turns": {
        "model": "deepseek-chat",
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL], "reasoning_content": "Need a tool."},
            {"role": "tool", "tool_call_id": "call_1", "content": '{"temp":21}'},
            {"role": "assistant", "content": [{"type": "refusal", "refusal": "No."}], "refusal": "No."},
        ],
        "tools": [WEATHER_TOOL, {"type": "function", "function": {"name": "noop"}}],
        "tool_choice": "auto",
        "parallel_tool_calls": False,
    },
    "tool_choice_required": {"model": "m", "messages": [], "tools": [WEATHER_TOOL], "tool_choice": "required"},
    "tool_choice_none": {"model": "m", "messages": [], "tool_choice": "none"},
    "tool_choice_function": {
        "model": "m",
        "messages": [],
        "tools": [WEATHER_TOOL],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    },
    "tool_choice_allowed_tools": {
        "model": "m",
        "messages": [],
        "tool_choice": {
            "type": "allowed_tools",
            "allowed_tools": {"mode": "auto", "tools": [{"type": "function", "function": {"name": "get_weather"}}]},
        },
    },
    "tool_choice_custom": {"model": "m", "messages": [], "tool_choice": {"type": "custom", "custom": {"name": "sql"}}},
    "custom_tool": {
        "model": "gpt-5",
        "messages": [],
        "tools": [{"type": "custom", "custom": {"name": "sql", "format": {"type": "text"}}}],
    },
    "function_tool_with_cache_control": {
        "model": "m",
        "messages": [],
        "tools": [{**WEATHER_TOOL, "cache_control": {"type": "ephemeral"}}],
    },
    "response_format_json_schema": {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "List three colours"}],
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": "colours",
                "description": "Three colours",
                "schema": {"type": "object", "properties": {"colours": {"type": "array", "items": {"type": "string"}}}},
                "strict": True,
            },
        },
    },
    "response_format_json_object": {"model": "m", "messages": [], "response_format": {"type": "json_object"}},
    "response_format_unknown": {
        "model": "m",
        "messages": [],
        "response_format": {"type": "grammar", "grammar": {"syntax": "lark", "definition": "start: /a+/"}},
    },
    "stream_options": {
        "model": "m",
        "messages": [{"role": "user", "content": "x"}],
        "stream_options": {"include_usage": True, "include_obfuscation": False},
        "stop": ["\n\n", "END", "###", "STOP", "fifth is upstream's call"],
    },
    "stream_options_plain": {"model": "m", "messages": [], "stream_options": {"include_usage": False}},
    "reasoning_effort": {
        "model": "o3",
        "messages": [{"role": "user", "content": "Prove it"}],
        "reasoning_effort": "high",
    },
    "deepseek_thinking": {
        "model": "deepseek-v4-pro",
        "messages": [{"role": "user", "content": "2+2"}],
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "reasoning_effort": "max",
    },
    "openai_only_extras": {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "x"}],
        "metadata": {"team": "search"},
        "service_tier": "flex",
        "logit_bias": {"50256": -100, "198": 2.5},
        "modalities": ["text"],
        "prediction": {"type": "content", "content": "old text"},
        "web_search_options": {"search_context_size": "low", "user_location": None},
        "safety_identifier": "h-1",
        "prompt_cache_key": "k",
        "verbosity": "low",
        "store": False,
    },
    "unknown_part_types": {
        "model": "m",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "video_url", "video_url": {"url": "https://example.com/v.mp4"}},
                    {"type": "text", "text": "cached", "cache_control": {"type": "ephemeral"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": None}},
                    {"type": "file", "file": {"file_id": "file-1", "filename": None}},
                ],
            }
        ],
    },
    "empty_strings_kept": {"model": "m", "messages": [], "user": "", "reasoning_effort": "", "stop": [], "tools": []},
    "unicode": {"model": "m", "messages": [{"role": "user", "content": "Grüße 你好 🦜"}]},
}


@pytest.mark.parametrize("body", CORPUS.values(), ids=CORPUS.keys())
def test_round_trip_is_exact(body: dict[str, Any]) -> None:
    params = params_from_json(copy.deepcopy(body))
    assert params_to_json(params) == body
    reparsed = chat_pb2.ChatCompletionParams.FromString(params.SerializeToString())
    assert params_to_json(reparsed) == body


def test_documented_normalisations() -> None:
    body = {
        "model": "m",
        "messages": [
            {"role": "user", "content": []},
            {"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "assistant", "content": "x", "tool_calls": [], "name": None, "annotations": [], "audio": None},
        ],
        "stop": "END",
        "temperature": None,
        "thinking": {"budget_tokens": 1024.0},
        "stream": True,
    }
    assert params_to_json(params_from_json(body)) == {
        "model": "m",
        "messages": [
            {"role": "user", "content": None},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
            },
            {"role": "assistant", "content": "x"},
        ],
        "stop": ["END"],
        "thinking": {"budget_tokens": 1024},
    }
    assert json.dumps(params_to_json(params_from_json(body))["thinking"]) == '{"budget_tokens": 1024}'


def test_fields_are_modelled_where_the_server_reads_them() -> None:
    params = params_from_json(CORPUS["tool_turns"])
    assistant = params.messages[1]
    assert not assistant.HasField("content") and not assistant.content_parts
    assert assistant.reasoning_content == "Need a tool."
    assert assistant.tool_calls[0].function.arguments == '{"city":"Paris"}'
    assert struct_to_json(params.tools[0].function.parameters) == WEATHER_PARAMETERS
    assert not params.tools[0].HasField("other")
    assert params.tool_choice.mode == "auto"
    assert params.HasField("parallel_tool_calls") and params.parallel_tool_calls is False
    assert not params.HasField("extra")

    multipart = params_from_json(CORPUS["multipart_user"]).messages[0].content_parts
    assert [part.WhichOneof("part") for part in multipart] == [
        "text",
        "image_url",
        "image_url",
        "input_audio",
        "file",
        "file",
    ]
    assert (multipart[1].image_url.url, multipart[1].image_url.detail) == (PNG, "low")
    assert multipart[4].file.filename == "a.pdf"

    stream = params_from_json(CORPUS["stream_options"])
    assert stream.stream_options.include_usage is True
    assert list(stream.stop)[-1] == "fifth is upstream's call"
    assert struct_to_json(stream.extra) == {"stream_options": {"include_usage": True, "include_obfuscation": False}}

    function_choice = params_from_json(CORPUS["tool_choice_function"]).tool_choice
    assert function_choice.function_name == "get_weather"

    unknown = params_from_json(CORPUS["unknown_part_types"]).messages[0].content_parts
    assert [part.WhichOneof("part") for part in unknown] == ["other"] * 4

    cached_tool = params_from_json(CORPUS["function_tool_with_cache_control"]).tools[0]
    assert cached_tool.function.name == "get_weather" and cached_tool.HasField("other")


def test_extra_keeps_unmodelled_keys_and_never_stream() -> None:
    params = params_from_json({**CORPUS["deepseek_thinking"], "stream": True})
    assert params.reasoning_effort == "max"
    assert struct_to_json(params.extra) == {"thinking": {"type": "enabled", "budget_tokens": 1024}}


def test_modelled_fields_win_over_extra_and_upstream_keys_never_leave() -> None:
    params = params_from_json({"model": "m", "messages": [], "temperature": 0.5})
    params.extra.update({"temperature": 2, "model": "other", "api_base": "http://169.254.169.254", "stream": False})
    params.extra.update({"seed": 7})
    assert params_to_json(params) == {"model": "m", "messages": [], "temperature": 0.5, "seed": 7}


def test_the_server_can_change_modelled_fields() -> None:
    params = params_from_json(CORPUS["stream_options"])
    params.stream_options.include_usage = True
    params.model = "upstream-name"
    out = params_to_json(params)
    assert out["model"] == "upstream-name"
    assert out["stream_options"] == {"include_usage": True, "include_obfuscation": False}


WIRE_ERRORS: list[tuple[Any, str | None]] = [
    ([], None),
    ({"messages": []}, "model"),
    ({"model": "m"}, "messages"),
    ({"model": None, "messages": []}, "model"),
    ({"model": 3, "messages": []}, "model"),
    ({"model": "m", "messages": {}}, "messages"),
    ({"model": "m", "messages": ["hi"]}, "messages[0]"),
    ({"model": "m", "messages": [{"content": "x"}]}, "messages[0].role"),
    ({"model": "m", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
    ({"model": "m", "messages": [{"role": ["user"], "content": "x"}]}, "messages[0].role"),
    ({"model": "m", "messages": [{"role": "user"}, {"role": "user", "content": 5}]}, "messages[1].content"),
    ({"model": "m", "messages": [{"role": "user", "content": ["x"]}]}, "messages[0].content[0]"),
    ({"model": "m", "messages": [{"role": "user", "content": [{"text": "x"}]}]}, "messages[0].content[0].type"),
    ({"model": "m", "messages": [{"role": "user", "content": [{"type": "text"}]}]}, "messages[0].content[0].text"),
    (
        {"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "https://x"}]}]},
        "messages[0].content[0].image_url",
    ),
    (
        {
            "model": "m",
            "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"detail": "low"}}]}],
        },
        "messages[0].content[0].image_url.url",
    ),
    (
        {
            "model": "m",
            "messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "x"}}]}],
        },
        "messages[0].content[0].input_audio.format",
    ),
    (
        {"model": "m", "messages": [{"role": "user", "content": [{"type": "file", "file": {"file_id": 1}}]}]},
        "messages[0].content[0].file.file_id",
    ),
    ({"model": "m", "messages": [{"role": "user", "content": "x", "prefix": True}]}, "messages[0].prefix"),
    ({"model": "m", "messages": [{"role": "assistant", "tool_calls": {}}]}, "messages[0].tool_calls"),
    (
        {
            "model": "m",
            "messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "custom", "custom": {}}]}],
        },
        "messages[0].tool_calls[0].type",
    ),
    (
        {"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"function": {"arguments": {"a": 1}}}]}]},
        "messages[0].tool_calls[0].function.arguments",
    ),
    ({"model": "m", "messages": [{"role": "tool", "content": "x", "tool_call_id": 7}]}, "messages[0].tool_call_id"),
    ({"model": "m", "messages": [], "max_tokens": "100"}, "max_tokens"),
    ({"model": "m", "messages": [], "max_tokens": -1}, "max_tokens"),
    ({"model": "m", "messages": [], "max_tokens": 1.5}, "max_tokens"),
    ({"model": "m", "messages": [], "max_completion_tokens": 2**31}, "max_completion_tokens"),
    ({"model": "m", "messages": [], "temperature": "hot"}, "temperature"),
    ({"model": "m", "messages": [], "temperature": True}, "temperature"),
    ({"model": "m", "messages": [], "temperature": math.nan}, "temperature"),
    ({"model": "m", "messages": [], "top_p": 10**400}, "top_p"),
    ({"model": "m", "messages": [], "n": 0}, "n"),
    ({"model": "m", "messages": [], "seed": 2**63}, "seed"),
    ({"model": "m", "messages": [], "stop": 3}, "stop"),
    ({"model": "m", "messages": [], "stop": ["a", None]}, "stop[1]"),
    ({"model": "m", "messages": [], "tools": [{"function": {"name": "f"}}]}, "tools[0].type"),
    ({"model": "m", "messages": [], "tools": [{"type": "function", "function": {}}]}, "tools[0].function.name"),
    (
        {"model": "m", "messages": [], "tools": [{"type": "function", "function": {"name": "f", "parameters": []}}]},
        "tools[0].function.parameters",
    ),
    ({"model": "m", "messages": [], "tool_choice": 1}, "tool_choice"),
    (
        {"model": "m", "messages": [], "tool_choice": {"type": "function", "function": {"name": 1}}},
        "tool_choice.function.name",
    ),
    ({"model": "m", "messages": [], "parallel_tool_calls": "yes"}, "parallel_tool_calls"),
    ({"model": "m", "messages": [], "response_format": "json"}, "response_format"),
    ({"model": "m", "messages": [], "response_format": {}}, "response_format.type"),
    (
        {"model": "m", "messages": [], "response_format": {"type": "json_schema", "json_schema": {"schema": 1}}},
        "response_format.json_schema.schema",
    ),
    ({"model": "m", "messages": [], "stream_options": {"include_usage": 1}}, "stream_options.include_usage"),
    ({"model": "m", "messages": [], "reasoning_effort": 3}, "reasoning_effort"),
    ({"model": "m", "messages": [], "logprobs": "true"}, "logprobs"),
    ({"model": "m", "messages": [], "top_logprobs": -2}, "top_logprobs"),
    ({"model": "m", "messages": [], "user": 42}, "user"),
    ({"model": "m", "messages": [], "metadata": {"big": 2**60}}, "metadata.big"),
    ({"model": "m", "messages": [], "metadata": {"x": math.inf}}, "metadata.x"),
    ({"model": "m", "messages": [], "thinking": {"f": {1, 2}}}, "thinking.f"),
    ({"model": "m", "messages": [{"role": "user", "content": "\ud800"}]}, "messages[0].content"),
    ({"model": "m", "messages": [], "extra_key": {"\udfff": 1}}, "extra_key"),
] + [
    ({"model": "m", "messages": [], key: "https://attacker.example"}, key)
    for key in sorted(("api_base", "base_url", "api_key", "api_version", "organization", "custom_llm_provider"))
]


@pytest.mark.parametrize(("body", "param"), WIRE_ERRORS)
def test_wire_errors_name_the_param(body: object, param: str | None) -> None:
    with pytest.raises(WireError) as caught:
        params_from_json(body)
    assert caught.value.param == param
    assert isinstance(caught.value, ValueError) and caught.value.message


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"type": "string"}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def test_struct_depth_stays_parseable_by_the_server() -> None:
    deepest: dict[str, Any] = {"model": "m", "messages": [], "tools": [{"type": "function", "function": {"name": "f"}}]}
    deepest["tools"][0]["function"]["parameters"] = nested(MAX_STRUCT_DEPTH)
    params = params_from_json(deepest)
    wire = relay_pb2.CreateChatCompletionRequest(params=params).SerializeToString()
    assert params_to_json(relay_pb2.CreateChatCompletionRequest.FromString(wire).params) == deepest

    deepest["tools"][0]["function"]["parameters"] = nested(MAX_STRUCT_DEPTH + 1)
    with pytest.raises(WireError) as caught:
        params_from_json(deepest)
    assert caught.value.param is not None and caught.value.param.startswith("tools[0].function.parameters.a.a")


def test_extra_lists_count_towards_depth() -> None:
    value: Any = 1
    for _ in range(MAX_STRUCT_DEPTH + 1):
        value = [value]
    with pytest.raises(WireError):
        params_from_json({"model": "m", "messages": [], "deep": value})


def test_hostile_chat_requests_raise_only_wire_errors() -> None:
    accepted = decode_mutations(params_from_json, params_to_json, list(CORPUS.values()), rounds=4000, seed=1)
    assert 0 < accepted < 4000
