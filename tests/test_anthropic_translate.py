"""Translation between OpenAI-shaped messages and Anthropic's Messages API, row by row."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import json_format

from gateway.openai import wire
from server.errors import ContextLengthExceededError, InvalidArgumentError, UpstreamError
from server.providers.anthropic_translate import (
    AnthropicStreamTranslator,
    error_from_anthropic,
    from_anthropic_response,
    to_anthropic_request,
)


def _request(body: dict[str, object], version: str = "2023-06-01") -> dict[str, object]:
    params = wire.params_from_json({"model": "m", **body})
    return to_anthropic_request(params, upstream_model="up", max_tokens=100, stream=False, api_version=version)


def test_system_hoisted_same_roles_merged_tool_results_first() -> None:
    body = _request(
        {
            "messages": [
                {"role": "system", "content": "one"},
                {"role": "user", "content": "q1"},
                {"role": "user", "content": "q2"},
                {"role": "developer", "content": "two"},
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}},
                        {"id": "c2", "type": "function", "function": {"name": "g", "arguments": "{}"}},
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "r1"},
                {"role": "tool", "tool_call_id": "c2", "content": "r2"},
                {"role": "user", "content": "thanks"},
            ]
        }
    )
    assert body["system"] == "one\n\ntwo"
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "q1"}, {"type": "text", "text": "q2"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "c1", "name": "f", "input": {"a": 1}},
                {"type": "tool_use", "id": "c2", "name": "g", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "c1", "content": "r1"},
                {"type": "tool_result", "tool_use_id": "c2", "content": "r2"},
                {"type": "text", "text": "thanks"},
            ],
        },
    ]


def test_sampling_stop_tools_and_choice() -> None:
    body = _request(
        {
            "messages": [{"role": "user", "content": "x"}],
            "temperature": 1.7,
            "top_p": 0.5,
            "stop": "END",
            "tools": [{"type": "function", "function": {"name": "f", "description": "d"}}],
            "tool_choice": "required",
            "parallel_tool_calls": False,
            "user": "u-1",
        }
    )
    assert (body["temperature"], body["top_p"], body["stop_sequences"]) == (1.0, 0.5, ["END"])
    assert body["tools"] == [{"name": "f", "description": "d", "input_schema": {"type": "object"}}]
    assert body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert body["metadata"] == {"user_id": "u-1"}
    newer = _request({"messages": [{"role": "user", "content": "x"}], "temperature": 0.2}, version="2026-10-21")
    assert "temperature" not in newer


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"n": 2}, "n"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}],
                    }
                ]
            },
            "messages[0].content[0]",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "data:image/bmp;base64,AA"}}],
                    }
                ]
            },
            "messages[0].content[0]",
        ),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}
                        ],
                    }
                ]
            },
            "messages[0].tool_calls[0].function.arguments",
        ),
    ],
)
def test_untranslatable_requests_are_refused(body: dict[str, object], param: str) -> None:
    full = {"messages": [{"role": "user", "content": "x"}], **body}
    with pytest.raises(InvalidArgumentError) as caught:
        _request(full)
    assert caught.value.param == param


def test_response_with_thinking_text_and_tool_use() -> None:
    answer = from_anthropic_response(
        {
            "id": "msg_1",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "s"},
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "w", "input": {"city": "Paris"}},
            ],
            "stop_reason": "tool_use",
            "usage": {
                "input_tokens": 10,
                "output_tokens": 5,
                "cache_read_input_tokens": 4,
                "cache_creation_input_tokens": 2,
            },
        },
        model="claude",
        created=7,
    )
    choice = answer.choices[0]
    assert (choice.message.content, choice.message.reasoning_content, choice.finish_reason) == (
        "Checking.",
        "hmm",
        "tool_calls",
    )
    assert choice.message.tool_calls[0].function.arguments == '{"city":"Paris"}'
    usage = answer.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (16, 5, 21)
    assert (usage.prompt_tokens_details.cached_tokens, usage.prompt_tokens_details.cache_write_tokens) == (4, 2)


def test_stream_events_become_chunks_and_usage_is_a_running_maximum() -> None:
    translator = AnthropicStreamTranslator(model="claude", created=1)
    events: list[tuple[str, Any]] = [
        ("message_start", {"message": {"id": "msg_1", "usage": {"input_tokens": 0, "output_tokens": 1}}}),
        ("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "Hi"}}),
        ("ping", {}),
        (
            "content_block_start",
            {"index": 1, "content_block": {"type": "tool_use", "id": "t1", "name": "w", "input": {}}},
        ),
        ("content_block_delta", {"index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"a"'}}),
        ("message_delta", {"delta": {"stop_reason": None}, "usage": {"output_tokens": 10}}),
        ("message_delta", {"delta": {"stop_reason": "tool_use"}, "usage": {"input_tokens": 30, "output_tokens": 25}}),
        ("message_stop", {}),
    ]
    chunks = [chunk for event, data in events for chunk in translator.feed(event, data)]
    as_json = [wire.chunk_to_json(chunk) for chunk in chunks]
    assert as_json[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert as_json[1]["choices"][0]["delta"] == {"content": "Hi"}
    assert as_json[2]["choices"][0]["delta"]["tool_calls"] == [
        {"index": 0, "id": "t1", "type": "function", "function": {"name": "w", "arguments": ""}}
    ]
    assert as_json[3]["choices"][0]["delta"]["tool_calls"] == [{"index": 0, "function": {"arguments": '{"a"'}}]
    assert as_json[4]["choices"][0]["finish_reason"] == "tool_calls"
    assert as_json[5]["choices"] == [] and as_json[5]["usage"]["completion_tokens"] == 25
    assert as_json[5]["usage"]["prompt_tokens"] == 30
    assert translator.finished and all(chunk.id == "msg_1" for chunk in chunks)
    assert json_format.MessageToDict(translator.usage)["completionTokens"] == "25"


def test_error_event_is_an_upstream_error_with_its_retryability() -> None:
    translator = AnthropicStreamTranslator(model="claude", created=1)
    translator.feed("message_start", {"message": {"id": "m", "usage": {"input_tokens": 3}}})
    with pytest.raises(UpstreamError) as caught:
        translator.feed("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    assert caught.value.retryable and caught.value.upstream_status == 529
    with pytest.raises(UpstreamError) as caught:
        translator.feed("error", {"error": {"type": "invalid_request_error"}})
    assert not caught.value.retryable


def test_http_errors_map_to_domain_errors() -> None:
    leaked = {"error": {"type": "invalid_request_error", "message": "bad key sk-ant-1234567890abcdef in request"}}
    refused = error_from_anthropic(400, leaked, None)
    assert isinstance(refused, InvalidArgumentError) and "sk-ant" not in refused.message
    too_long = error_from_anthropic(400, {"error": {"message": "prompt is too long: 300000 tokens"}}, None)
    assert isinstance(too_long, ContextLengthExceededError)
    for status, retryable in ((401, False), (404, False), (429, True), (500, True), (529, True)):
        error = error_from_anthropic(status, None, 2.0)
        assert isinstance(error, UpstreamError) and error.retryable is retryable
    assert error_from_anthropic(413, None, None).reason == "request_too_large"
