"""Anthropic stream events as chat completion chunks (PROVIDERS.md §4.1), and usage that is never double counted."""

from __future__ import annotations

from typing import Any

import anthropic.types
import pydantic
import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk

from gateway.openai import wire
from server.errors import UpstreamError
from server.providers.anthropic_stream import AnthropicStreamTranslator

Event = tuple[str, dict[str, Any]]
_SDK_EVENT = pydantic.TypeAdapter(anthropic.types.RawMessageStreamEvent)


def _event(kind: str, **fields: Any) -> Event:
    return kind, {"type": kind, **fields}


def _start(usage: dict[str, int]) -> Event:
    message: dict[str, Any] = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": "claude-x",
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage,
    }
    return _event("message_start", message=message)


def _text(index: int, text: str) -> Event:
    return _event("content_block_delta", index=index, delta={"type": "text_delta", "text": text})


def _tool_start(index: int, call_id: str, name: str) -> Event:
    block = {"type": "tool_use", "id": call_id, "name": name, "input": {}}
    return _event("content_block_start", index=index, content_block=block)


def _json_delta(index: int, fragment: str) -> Event:
    return _event("content_block_delta", index=index, delta={"type": "input_json_delta", "partial_json": fragment})


def _message_delta(stop_reason: str | None, usage: dict[str, int]) -> Event:
    return _event("message_delta", delta={"stop_reason": stop_reason, "stop_sequence": None}, usage=usage)


# PROVIDERS.md §3.6: thinking, text, a tool call whose input comes in two pieces.
STREAM: list[Event] = [
    _start({"input_tokens": 25, "output_tokens": 1, "cache_read_input_tokens": 4, "cache_creation_input_tokens": 2}),
    _event("content_block_start", index=0, content_block={"type": "thinking", "thinking": "", "signature": ""}),
    _event("content_block_delta", index=0, delta={"type": "thinking_delta", "thinking": "Let me check…"}),
    _event("content_block_delta", index=0, delta={"type": "signature_delta", "signature": "EqQB"}),
    _event("content_block_stop", index=0),
    _event("content_block_start", index=1, content_block={"type": "text", "text": ""}),
    _event("ping"),
    _text(1, "Checking."),
    _event("content_block_stop", index=1),
    _tool_start(2, "toolu_1", "get_weather"),
    _json_delta(2, '{"city": "Par'),
    _json_delta(2, 'is"}'),
    _event("content_block_stop", index=2),
    _message_delta("tool_use", {"output_tokens": 89}),
    _event("message_stop"),
]


def _chunks(events: list[Event], translator: AnthropicStreamTranslator | None = None) -> list[dict[str, Any]]:
    translator = translator or AnthropicStreamTranslator(model="claude", created=1_700_000_000)
    return [wire.chunk_to_json(chunk) for kind, data in events for chunk in translator.feed(kind, data)]


def _choice(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    chunk = {"id": "msg_1", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": "claude"}
    return {**chunk, "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}]}


def test_the_sample_events_fit_the_anthropic_sdk() -> None:
    for kind, data in STREAM:
        if kind != "ping":  # the SDK skips pings before validating
            _SDK_EVENT.validate_python(data)


def test_a_whole_stream_becomes_this_chunk_sequence() -> None:
    usage = {
        "prompt_tokens": 31,
        "completion_tokens": 89,
        "total_tokens": 120,
        "prompt_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 2},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }
    call = {"index": 0, "id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
    assert _chunks(STREAM) == [
        {**_choice({"role": "assistant", "content": ""}), "usage": None},
        {**_choice({"reasoning_content": "Let me check…"}), "usage": None},
        {**_choice({"content": "Checking."}), "usage": None},
        {**_choice({"tool_calls": [call]}), "usage": None},
        {**_choice({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": "Par'}}]}), "usage": None},
        {**_choice({"tool_calls": [{"index": 0, "function": {"arguments": 'is"}'}}]}), "usage": None},
        {**_choice({}, "tool_calls"), "usage": None},
        {**_choice({}), "choices": [], "usage": usage},
    ]


def test_the_openai_sdk_accumulates_the_chunks_into_the_right_answer() -> None:
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    for chunk in _chunks(STREAM):
        state.handle_chunk(ChatCompletionChunk.model_validate(chunk))
    final = state.get_final_completion()
    message = final.choices[0].message
    assert (final.id, final.choices[0].finish_reason, message.role) == ("msg_1", "tool_calls", "assistant")
    assert message.content == "Checking."
    assert getattr(message, "reasoning_content", None) == "Let me check…"
    assert [(call.id, call.function.name, call.function.arguments) for call in message.tool_calls or []] == [
        ("toolu_1", "get_weather", '{"city": "Paris"}')
    ]
    assert final.usage is not None and (final.usage.prompt_tokens, final.usage.completion_tokens) == (31, 89)


def test_tool_calls_are_numbered_among_tool_calls_not_among_blocks() -> None:
    events = [
        _start({"input_tokens": 1, "output_tokens": 1}),
        _text(0, "Two calls."),
        _tool_start(1, "toolu_a", "f"),
        _tool_start(2, "toolu_b", "g"),
        _json_delta(2, "{}"),
        _json_delta(1, "{}"),
    ]
    deltas = [chunk["choices"][0]["delta"] for chunk in _chunks(events)[2:]]
    assert [(call["index"], call.get("id")) for delta in deltas for call in delta["tool_calls"]] == [
        (0, "toolu_a"),
        (1, "toolu_b"),
        (1, None),
        (0, None),
    ]


def test_usage_is_a_running_maximum_never_a_sum() -> None:
    translator = AnthropicStreamTranslator(model="claude", created=1)
    events = [
        _start({"input_tokens": 0, "output_tokens": 1, "cache_read_input_tokens": 40}),
        _text(0, "Hello"),
        _message_delta(None, {"output_tokens": 10}),
        _message_delta("end_turn", {"output_tokens": 25, "input_tokens": 30}),
    ]
    _chunks(events, translator)
    usage = translator.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (70, 25, 95)
    assert (usage.prompt_tokens_details.cached_tokens, usage.prompt_tokens_details.cache_write_tokens) == (40, 0)


def test_a_later_zero_never_lowers_a_count_and_thinking_tokens_are_kept() -> None:
    translator = AnthropicStreamTranslator(model="claude", created=1)
    events = [
        _start({"input_tokens": 30, "output_tokens": 1}),
        _message_delta(None, {"output_tokens": 9, "input_tokens": 0}),
        _event("message_delta", delta={"stop_reason": "end_turn"}, usage={"output_tokens": 9}),
    ]
    events[-1][1]["usage"]["output_tokens_details"] = {"thinking_tokens": 6}
    chunks = _chunks(events, translator)
    assert (translator.usage.prompt_tokens, translator.usage.completion_tokens) == (30, 9)
    assert translator.usage.completion_tokens_details.reasoning_tokens == 6
    assert [chunk["choices"][0]["finish_reason"] for chunk in chunks] == [None, "stop"]


def test_progress_properties() -> None:
    translator = AnthropicStreamTranslator(model="claude", created=1)
    _chunks(STREAM[:-1], translator)
    assert not translator.finished
    assert translator.output_text_chars == len("Let me check…") + len("Checking.") + len('{"city": "Paris"}')
    _chunks(STREAM[-1:], translator)
    assert translator.finished


@pytest.mark.parametrize(
    "event",
    [
        _event("ping"),
        _event("content_block_stop", index=0),
        _event("content_block_start", index=0, content_block={"type": "text", "text": ""}),
        _event("content_block_delta", index=0, delta={"type": "signature_delta", "signature": "s"}),
        _event("content_block_delta", index=0, delta={"type": "citations_delta", "citation": {}}),
        _event("something_new", anything=1),
    ],
)
def test_events_with_nothing_for_the_client(event: Event) -> None:
    translator = AnthropicStreamTranslator(model="claude", created=1)
    translator.feed(*STREAM[0])
    assert translator.feed(*event) == []


def test_a_stream_without_message_start_still_opens_with_the_role() -> None:
    deltas = [chunk["choices"][0]["delta"] for chunk in _chunks([_text(0, "hi")])]
    assert deltas == [{"role": "assistant", "content": ""}, {"content": "hi"}]


@pytest.mark.parametrize(
    ("error_type", "retryable", "status"),
    [
        ("overloaded_error", True, 529),
        ("rate_limit_error", True, 429),
        ("api_error", True, 500),
        ("invalid_request_error", False, 400),
        ("authentication_error", False, 401),
        ("something_new", False, 0),
    ],
)
def test_an_error_after_content_raises_with_its_retryability(error_type: str, retryable: bool, status: int) -> None:
    translator = AnthropicStreamTranslator(model="claude", created=1)
    _chunks(STREAM[:8], translator)
    secret = "upstream detail sk-ant-api03-abcdefghijklmnop"
    with pytest.raises(UpstreamError) as caught:
        translator.feed("error", {"type": "error", "error": {"type": error_type, "message": secret}})
    assert (caught.value.retryable, caught.value.upstream_status) == (retryable, status)
    assert error_type in caught.value.message and "sk-ant" not in caught.value.message


def test_an_error_type_is_not_echoed_when_it_is_not_a_plain_name() -> None:
    translator = AnthropicStreamTranslator(model="claude", created=1)
    with pytest.raises(UpstreamError) as caught:
        translator.feed("error", {"error": {"type": "key sk-ant-123 leaked"}})
    assert "sk-ant" not in caught.value.message and not caught.value.retryable


@pytest.mark.parametrize(
    "event",
    [
        _json_delta(5, "{}"),
        _event("content_block_delta", index=0, delta={"type": "text_delta", "text": None}),
        _event("message_start", message={"usage": {}}),
    ],
)
def test_malformed_events_are_final_upstream_errors(event: Event) -> None:
    translator = AnthropicStreamTranslator(model="claude", created=1)
    with pytest.raises(UpstreamError) as caught:
        translator.feed(*event)
    assert not caught.value.retryable
