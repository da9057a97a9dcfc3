"""Anthropic Messages answers as chat completions: content, reasoning, tool calls, finish reasons and usage."""

from __future__ import annotations

import copy
from typing import Any

import anthropic.types
import openai.types.chat
import pytest

from gateway.openai import wire
from server.errors import UpstreamError
from server.providers.anthropic_response import from_anthropic_response

# PROVIDERS.md §3.4, with cache and thinking counters filled in.
ANSWER: dict[str, Any] = {
    "id": "msg_01",
    "type": "message",
    "role": "assistant",
    "model": "claude-opus-x",
    "content": [
        {"type": "thinking", "thinking": "The user wants weather.", "signature": "EqQB"},
        {"type": "text", "text": "Checking "},
        {"type": "text", "text": "now."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris", "days": 2}},
        {"type": "redacted_thinking", "data": "opaque"},
        {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 25,
        "output_tokens": 51,
        "cache_creation_input_tokens": 7,
        "cache_read_input_tokens": 100,
        "output_tokens_details": {"thinking_tokens": 12},
    },
}


def _answer(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(ANSWER)
    body.update(changes)
    return body


def _json(body: dict[str, Any]) -> dict[str, Any]:
    return wire.completion_to_json(from_anthropic_response(body, model="claude-opus", created=1_700_000_000))


def test_the_sample_fits_the_anthropic_sdk() -> None:
    anthropic.types.Message.model_validate(ANSWER)


def test_a_whole_answer() -> None:
    completion = _json(ANSWER)
    assert completion == {
        "id": "msg_01",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "claude-opus",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Checking now.",
                    "refusal": None,
                    "reasoning_content": "The user wants weather.",
                    "tool_calls": [
                        {
                            "id": "toolu_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Paris","days":2}'},
                        },
                        {"id": "toolu_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
                    ],
                },
                "finish_reason": "tool_calls",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": 132,
            "completion_tokens": 51,
            "total_tokens": 183,
            "prompt_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 7},
            "completion_tokens_details": {"reasoning_tokens": 12},
        },
    }
    openai.types.chat.ChatCompletion.model_validate(completion)


def test_tool_calls_without_text_leave_content_null() -> None:
    tool_use = {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}
    message = _json(_answer(content=[tool_use]))["choices"][0]["message"]
    assert message["content"] is None and "reasoning_content" not in message


def test_an_empty_answer_has_empty_content() -> None:
    assert _json(_answer(content=[], stop_reason="end_turn"))["choices"][0]["message"]["content"] == ""


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
        ("something_new", "stop"),
    ],
)
def test_stop_reasons(stop_reason: str, finish_reason: str) -> None:
    assert _json(_answer(stop_reason=stop_reason))["choices"][0]["finish_reason"] == finish_reason


def test_usage_without_cache_or_thinking_fields() -> None:
    usage = _json(_answer(usage={"input_tokens": 10, "output_tokens": 3}))["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (10, 3, 13)
    assert usage["prompt_tokens_details"]["cached_tokens"] == 0


@pytest.mark.parametrize(
    "usage",
    [
        None,
        {"output_tokens": 5},
        {"input_tokens": -1, "output_tokens": 5},
        {"input_tokens": "9", "output_tokens": 5},
        {"input_tokens": 1.5, "output_tokens": 5},
        {"input_tokens": 1, "output_tokens": 10**15},
    ],
)
def test_missing_or_hostile_usage_is_left_out_for_the_estimate(usage: Any) -> None:
    answer = from_anthropic_response(_answer(usage=usage), model="m", created=0)
    assert not answer.HasField("usage")


@pytest.mark.parametrize(
    "body",
    [
        {"id": "msg_1", "usage": {"input_tokens": 1, "output_tokens": 1}},
        _answer(content="text"),
        _answer(content=["text"]),
        _answer(content=[{"type": "text", "text": 3}]),
        _answer(content=[{"type": "tool_use", "id": "t", "name": "f", "input": "{}"}]),
        _answer(content=[{"type": "tool_use", "name": "f", "input": {}}]),
        _answer(id=None),
    ],
)
def test_malformed_answers_are_final_upstream_errors(body: dict[str, Any]) -> None:
    with pytest.raises(UpstreamError) as caught:
        from_anthropic_response(body, model="m", created=0)
    assert caught.value.retryable is False
