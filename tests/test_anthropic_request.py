"""OpenAI-shaped chat requests as Anthropic Messages bodies: one test per row of PROVIDERS.md §4."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pydantic
import pytest
from anthropic.types import message_create_params

from gateway.openai import wire
from server.errors import InvalidArgumentError
from server.providers.anthropic_request import to_anthropic_request

PNG_DATA = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
PDF_DATA = "JVBERi0xLjQK"
USER = {"role": "user", "content": "hi"}
_SDK_PARAMS = pydantic.TypeAdapter(message_create_params.MessageCreateParams)


def _body(request: dict[str, Any], *, version: str = "2023-06-01", stream: bool = False) -> dict[str, Any]:
    params = wire.params_from_json({"model": "gpt-ish", "messages": [USER], **request})
    return to_anthropic_request(params, upstream_model="claude-x", max_tokens=512, stream=stream, api_version=version)


def _refusal(request: dict[str, Any]) -> InvalidArgumentError:
    with pytest.raises(InvalidArgumentError) as caught:
        _body(request)
    return caught.value


def _materialized(value: Any) -> Any:
    """The SDK's params are typed with Iterable, which pydantic checks lazily: walk it to check it all."""
    if isinstance(value, dict):
        return {key: _materialized(item) for key, item in value.items()}
    if isinstance(value, Iterator | list | tuple):
        return [_materialized(item) for item in value]
    return value


def _sdk_checked(body: dict[str, Any]) -> None:
    """Fails when the body does not fit the official SDK's request types (unknown keys are ignored there)."""
    _materialized(_SDK_PARAMS.validate_python(body))


def test_a_whole_conversation_translates_row_by_row() -> None:
    body = _body(
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "Use tools."}]},
                {"role": "user", "content": "Weather in Paris and Rome?", "name": "ann"},
                {
                    "role": "assistant",
                    "content": "Checking.",
                    "reasoning_content": "two calls",
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "w", "arguments": '{"city":"Paris"}'},
                        },
                        {"id": "call_2", "type": "function", "function": {"name": "w", "arguments": '{"city":"Rome"}'}},
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
                {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "21C"}]},
                {"role": "user", "content": "And tomorrow?"},
                {"role": "system", "content": "Answer in French."},
            ],
            "max_tokens": 99,
            "stop": ["END"],
            "user": "user-7",
        },
        stream=True,
    )
    assert body == {
        "model": "claude-x",
        "max_tokens": 512,
        "stream": True,
        "system": "Be brief.\n\nUse tools.\n\nAnswer in French.",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Rome?"}]},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "call_1", "name": "w", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "call_2", "name": "w", "input": {"city": "Rome"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
                    {"type": "tool_result", "tool_use_id": "call_2", "content": "21C"},
                    {"type": "text", "text": "And tomorrow?"},
                ],
            },
        ],
        "stop_sequences": ["END"],
        "metadata": {"user_id": "user-7"},
    }
    _sdk_checked(body)


def test_same_role_runs_merge_and_tool_results_open_their_turn() -> None:
    body = _body(
        {
            "messages": [
                {"role": "user", "content": "a"},
                {"role": "user", "content": [{"type": "text", "text": "b"}]},
                {"role": "assistant", "content": None, "tool_calls": [_call("c1", "{}")]},
                {"role": "assistant", "content": "", "reasoning_content": "only thoughts"},
                {"role": "user", "content": "before the result"},
                {"role": "tool", "tool_call_id": "c1", "content": ""},
            ]
        }
    )
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "c1", "name": "f", "input": {}}]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "c1"}, {"type": "text", "text": "before the result"}],
        },
    ]
    _sdk_checked(body)


def test_assistant_refusal_is_kept_as_what_the_assistant_said() -> None:
    body = _body({"messages": [USER, {"role": "assistant", "content": None, "refusal": "I can't."}, USER]})
    assert body["messages"][1] == {"role": "assistant", "content": [{"type": "text", "text": "I can't."}]}


@pytest.mark.parametrize(
    ("part", "block"),
    [
        (
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_DATA}", "detail": "high"}},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_DATA}},
        ),
        (
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.webp"}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.webp"}},
        ),
        (
            {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{PDF_DATA}", "filename": "a.pdf"}},
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF_DATA}},
        ),
    ],
)
def test_image_and_pdf_parts(part: dict[str, Any], block: dict[str, Any]) -> None:
    body = _body({"messages": [{"role": "user", "content": [{"type": "text", "text": "look"}, part]}]})
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "look"}, block]}]
    _sdk_checked(body)


@pytest.mark.parametrize(
    "part",
    [
        {"type": "image_url", "image_url": {"url": "data:image/bmp;base64,Qk0="}},
        {"type": "image_url", "image_url": {"url": "file:///etc/passwd"}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
        {"type": "file", "file": {"file_data": "data:text/plain;base64,aGk="}},
        {"type": "file", "file": {"file_id": "file-abc"}},
    ],
)
def test_parts_anthropic_cannot_take_are_refused_naming_the_part(part: dict[str, Any]) -> None:
    refused = _refusal({"messages": [USER, {"role": "user", "content": [{"type": "text", "text": "x"}, part]}]})
    assert refused.param == "messages[1].content[1]"


ARGUMENTS = "messages[1].tool_calls[0].function.arguments"


@pytest.mark.parametrize(
    ("message", "param"),
    [
        (
            {"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{oops"}}]},
            ARGUMENTS,
        ),
        ({"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "[1]"}}]}, ARGUMENTS),
        ({"role": "tool", "content": "r"}, "messages[1].tool_call_id"),
        (
            {"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
            "messages[1].content[0]",
        ),
    ],
)
def test_messages_anthropic_cannot_take_are_refused(message: dict[str, Any], param: str) -> None:
    assert _refusal({"messages": [USER, message]}).param == param


def test_a_conversation_with_only_system_messages_is_refused() -> None:
    assert _refusal({"messages": [{"role": "system", "content": "x"}]}).param == "messages"


@pytest.mark.parametrize(
    ("version", "sent"),
    [("2023-06-01", {"temperature": 1.0, "top_p": 0.5}), ("2026-10-21", {})],
)
def test_sampling_is_clamped_and_sent_only_to_the_version_that_takes_it(version: str, sent: dict[str, float]) -> None:
    body = _body({"temperature": 1.7, "top_p": 0.5}, version=version)
    assert {key: body[key] for key in ("temperature", "top_p") if key in body} == sent


def test_low_temperature_passes_unchanged() -> None:
    assert _body({"temperature": 0.3})["temperature"] == 0.3


def test_function_tools_become_input_schemas() -> None:
    parameters = {"type": "object", "properties": {"q": {"type": "string", "maxLength": 5}}, "required": ["q"]}
    body = _body(
        {
            "tools": [
                {"type": "function", "function": {"name": "f", "description": "find", "parameters": parameters}},
                {"type": "function", "function": {"name": "g", "strict": True}},
            ]
        }
    )
    assert body["tools"] == [
        {"name": "f", "description": "find", "input_schema": parameters},
        {"name": "g", "input_schema": {"type": "object"}, "strict": True},
    ]
    assert isinstance(body["tools"][0]["input_schema"]["properties"]["q"]["maxLength"], int)
    _sdk_checked(body)


def test_custom_tools_are_refused() -> None:
    custom = {"type": "custom", "custom": {"name": "grammar"}}
    assert _refusal({"tools": [_tool("f"), custom]}).param == "tools[1]"


@pytest.mark.parametrize(
    ("request_fields", "choice"),
    [
        ({"tool_choice": "none"}, {"type": "none"}),
        ({"tool_choice": "auto"}, {"type": "auto"}),
        ({"tool_choice": "required"}, {"type": "any"}),
        ({"tool_choice": {"type": "function", "function": {"name": "f"}}}, {"type": "tool", "name": "f"}),
        ({"parallel_tool_calls": False}, {"type": "auto", "disable_parallel_tool_use": True}),
        (
            {"tool_choice": "required", "parallel_tool_calls": False},
            {"type": "any", "disable_parallel_tool_use": True},
        ),
        ({"tool_choice": "none", "parallel_tool_calls": False}, {"type": "none"}),
        ({"parallel_tool_calls": True}, None),
    ],
)
def test_tool_choice(request_fields: dict[str, Any], choice: dict[str, Any] | None) -> None:
    body = _body({"tools": [_tool("f")], **request_fields})
    assert body.get("tool_choice") == choice
    _sdk_checked(body)


def test_tool_choice_without_tools_is_not_sent() -> None:
    assert "tool_choice" not in _body({"parallel_tool_calls": False})


def test_allowed_tools_choice_is_refused() -> None:
    allowed = {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": [_tool("f")]}}
    assert _refusal({"tools": [_tool("f")], "tool_choice": allowed}).param == "tool_choice"


def test_n_above_one_is_refused_and_one_is_fine() -> None:
    assert _refusal({"n": 2}).param == "n"
    assert "n" not in _body({"n": 1})


@pytest.mark.parametrize(
    ("request_fields", "output_config"),
    [
        ({"response_format": {"type": "text"}}, None),
        ({"response_format": {"type": "json_object"}}, None),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "r", "schema": {"type": "object", "properties": {"n": {"minimum": 1}}}},
                }
            },
            {"format": {"type": "json_schema", "schema": {"type": "object", "properties": {"n": {"minimum": 1}}}}},
        ),
        ({"reasoning_effort": "none"}, None),
        ({"reasoning_effort": "minimal"}, None),
        ({"reasoning_effort": "low"}, {"effort": "low"}),
        ({"reasoning_effort": "max"}, {"effort": "max"}),
    ],
)
def test_response_format_and_reasoning_effort(
    request_fields: dict[str, Any], output_config: dict[str, Any] | None
) -> None:
    body = _body(request_fields)
    assert body.get("output_config") == output_config
    _sdk_checked(body)


@pytest.mark.parametrize(
    ("request_fields", "param"),
    [
        ({"reasoning_effort": "extreme"}, "reasoning_effort"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "r"}}}, "response_format"),
        ({"response_format": {"type": "grammar"}}, "response_format.type"),
    ],
)
def test_unknown_efforts_and_formats_are_refused(request_fields: dict[str, Any], param: str) -> None:
    assert _refusal(request_fields).param == param


def test_openai_only_fields_are_not_sent() -> None:
    body = _body(
        {
            "seed": 7,
            "presence_penalty": 0.5,
            "frequency_penalty": 0.5,
            "logprobs": True,
            "service_tier": "flex",
            "metadata": {"k": "v"},
            "max_completion_tokens": 9,
        }
    )
    assert body == {
        "model": "claude-x",
        "max_tokens": 512,
        "stream": False,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
    }


def _call(call_id: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": "f", "arguments": arguments}}


def _tool(name: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name}}
