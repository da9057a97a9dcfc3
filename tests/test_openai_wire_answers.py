"""The OpenAI wire codec: chat answers (unary, chunks, usage), checked against the openai SDK's models."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from openai.lib.streaming._deltas import accumulate_delta
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from tollgate.v1 import chat_pb2, relay_pb2

from gateway.openai.wire import (
    WireError,
    chunk_from_json,
    chunk_to_json,
    completion_from_json,
    completion_to_json,
    usage_from_json,
    usage_to_json,
)
from tests.support.wire_fuzz import decode_mutations

TOOL_CALL_COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1741570283,
    "model": "gpt-4o-2024-08-06",
    "system_fingerprint": "fp_1",
    "service_tier": "default",
    "choices": [
        {
            "index": 0,
            "finish_reason": "tool_calls",
            "logprobs": None,
            "message": {
                "role": "assistant",
                "content": None,
                "refusal": None,
                "annotations": [],
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
        }
    ],
    "usage": {
        "prompt_tokens": 1117,
        "completion_tokens": 46,
        "total_tokens": 1163,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    },
}
DEEPSEEK_COMPLETION = {
    "id": "ds-1",
    "object": "chat.completion",
    "created": 1745000000,
    "model": "deepseek-reasoner",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "4", "reasoning_content": "2+2 is 4."},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 20,
        "completion_tokens": 30,
        "total_tokens": 50,
        "prompt_cache_hit_tokens": 16,
        "prompt_cache_miss_tokens": 4,
        "completion_tokens_details": {"reasoning_tokens": 25},
    },
    "system_fingerprint": "fp_ds",
}
COMPLETIONS = {"tool_call": TOOL_CALL_COMPLETION, "deepseek": DEEPSEEK_COMPLETION}

HEAD = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
TEXT_STREAM = [
    {
        **HEAD,
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
        "usage": None,
    },
    {**HEAD, "choices": [{"index": 0, "delta": {"content": "Hello"}, "finish_reason": None}], "usage": None},
    {**HEAD, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": None},
    {
        **HEAD,
        "choices": [],
        "usage": {
            "prompt_tokens": 9,
            "completion_tokens": 2,
            "total_tokens": 11,
            "prompt_tokens_details": {"cached_tokens": 0},
        },
    },
]
REASONING_STREAM = [
    {**HEAD, "choices": [{"index": 0, "delta": {"role": "assistant", "content": None, "reasoning_content": ""}}]},
    {**HEAD, "choices": [{"index": 0, "delta": {"content": None, "reasoning_content": "Two plus"}}]},
    {**HEAD, "choices": [{"index": 0, "delta": {"content": None, "reasoning_content": " two."}}]},
    {**HEAD, "choices": [{"index": 0, "delta": {"content": "4", "reasoning_content": None}, "finish_reason": None}]},
    {**HEAD, "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "stop"}]},
]
TOOL_STREAM = [
    {**HEAD, "choices": [{"index": 0, "delta": {"role": "assistant", "content": None, "refusal": None}}]},
    {
        **HEAD,
        "choices": [
            {
                "index": 0,
                "delta": {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": ""},
                        }
                    ]
                },
            }
        ],
    },
    {**HEAD, "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}}]},
    {**HEAD, "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}}]},
    {
        **HEAD,
        "choices": [
            {
                "index": 0,
                "delta": {
                    "tool_calls": [
                        {
                            "index": 1,
                            "id": "call_2",
                            "type": "function",
                            "function": {"name": "get_time", "arguments": "{}"},
                        }
                    ]
                },
            }
        ],
    },
    {**HEAD, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}], "obfuscation": "xyz"},
]
CHUNKS = TEXT_STREAM + REASONING_STREAM + TOOL_STREAM


def relayed(chunk: dict[str, Any]) -> dict[str, Any]:
    """What a client receives for an upstream chunk: the proto and back, bytes included."""
    message = chunk_from_json(copy.deepcopy(chunk))
    return chunk_to_json(relay_pb2.StreamChatCompletionResponse.FromString(message.SerializeToString()))


def test_tool_call_completion_matches_the_sdk_model() -> None:
    out = completion_to_json(completion_from_json(copy.deepcopy(TOOL_CALL_COMPLETION)))
    assert out == {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1741570283,
        "model": "gpt-4o-2024-08-06",
        "system_fingerprint": "fp_1",
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "logprobs": None,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "refusal": None,
                    "tool_calls": TOOL_CALL_COMPLETION["choices"][0]["message"]["tool_calls"],  # type: ignore[index]
                },
            }
        ],
        "usage": TOOL_CALL_COMPLETION["usage"],
    }
    parsed = ChatCompletion.model_validate(out)
    call = parsed.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert (call.id, call.function.name, call.function.arguments) == ("call_1", "get_weather", '{"city":"Paris"}')  # type: ignore[union-attr]
    assert parsed.usage is not None and parsed.usage.total_tokens == 1163


def test_deepseek_completion_keeps_reasoning_and_cache_hits() -> None:
    response = completion_from_json(copy.deepcopy(DEEPSEEK_COMPLETION))
    assert response.usage.prompt_tokens_details.cached_tokens == 16
    assert response.choices[0].message.reasoning_content == "2+2 is 4."
    out = completion_to_json(response)
    assert out["choices"][0]["message"] == {
        "role": "assistant",
        "content": "4",
        "reasoning_content": "2+2 is 4.",
        "refusal": None,
    }
    parsed = ChatCompletion.model_validate(out)
    assert parsed.choices[0].message.content == "4"
    assert parsed.choices[0].message.model_extra == {"reasoning_content": "2+2 is 4."}
    assert parsed.usage is not None
    assert parsed.usage.prompt_tokens_details is not None and parsed.usage.prompt_tokens_details.cached_tokens == 16
    assert parsed.usage.completion_tokens_details is not None
    assert parsed.usage.completion_tokens_details.reasoning_tokens == 25


def test_a_built_completion_has_every_key_the_sdk_requires() -> None:
    response = relay_pb2.CreateChatCompletionResponse(id="x", created=5, model="m")
    response.choices.add(index=0, finish_reason="length").message.role = "assistant"
    out = completion_to_json(response)
    assert out == {
        "id": "x",
        "object": "chat.completion",
        "created": 5,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": None, "refusal": None},
                "finish_reason": "length",
                "logprobs": None,
            }
        ],
    }
    assert ChatCompletion.model_validate(out).choices[0].finish_reason == "length"


def test_text_stream_chunks() -> None:
    out = [relayed(chunk) for chunk in TEXT_STREAM]
    assert out[0]["choices"] == [
        {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None, "logprobs": None}
    ]
    assert out[1]["choices"][0]["delta"] == {"content": "Hello"}
    assert out[2]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "stop", "logprobs": None}
    assert [chunk["usage"] for chunk in out[:3]] == [None, None, None]
    assert out[3]["choices"] == []
    assert out[3]["usage"] == {
        "prompt_tokens": 9,
        "completion_tokens": 2,
        "total_tokens": 11,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }
    for chunk in out:
        assert {key: chunk[key] for key in ("id", "object", "created", "model")} == HEAD
        ChatCompletionChunk.model_validate(chunk)


def test_empty_content_delta_is_distinct_from_absent_content() -> None:
    first = chunk_from_json(copy.deepcopy(TEXT_STREAM[0])).choices[0].delta
    last = chunk_from_json(copy.deepcopy(TEXT_STREAM[2])).choices[0].delta
    assert first.HasField("content") and first.content == ""
    assert not last.HasField("content")


def test_deepseek_reasoning_deltas() -> None:
    out = [relayed(chunk) for chunk in REASONING_STREAM]
    assert [chunk["choices"][0]["delta"] for chunk in out] == [
        {"role": "assistant", "reasoning_content": ""},
        {"reasoning_content": "Two plus"},
        {"reasoning_content": " two."},
        {"content": "4"},
        {"content": ""},
    ]
    parsed = [ChatCompletionChunk.model_validate(chunk) for chunk in out]
    reasoning = "".join((chunk.choices[0].delta.model_extra or {}).get("reasoning_content", "") for chunk in parsed)
    assert reasoning == "Two plus two."
    assert parsed[-1].choices[0].finish_reason == "stop"


def test_tool_call_deltas_accumulate_like_the_sdk() -> None:
    out = [relayed(chunk) for chunk in TOOL_STREAM]
    assert out[1]["choices"][0]["delta"]["tool_calls"] == [
        {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
    ]
    assert out[2]["choices"][0]["delta"]["tool_calls"] == [{"index": 0, "function": {"arguments": '{"city":'}}]
    assert "obfuscation" not in out[-1]
    accumulated: dict[object, object] = {}
    for chunk in out:
        ChatCompletionChunk.model_validate(chunk)
        accumulate_delta(accumulated, chunk["choices"][0]["delta"])
    assert accumulated == {
        "role": "assistant",
        "tool_calls": [
            {
                "index": 0,
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
            },
            {"index": 1, "id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
        ],
    }


def test_built_chunks_carry_only_what_is_set() -> None:
    chunk = relay_pb2.StreamChatCompletionResponse(id="c", created=2, model="m", system_fingerprint="fp")
    call = chunk.choices.add(index=1).delta.tool_calls.add(index=2)
    call.function.arguments = "{"
    out = chunk_to_json(chunk)
    assert out == {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 2,
        "model": "m",
        "system_fingerprint": "fp",
        "choices": [
            {
                "index": 1,
                "delta": {"tool_calls": [{"index": 2, "function": {"arguments": "{"}}]},
                "finish_reason": None,
                "logprobs": None,
            }
        ],
        "usage": None,
    }
    ChatCompletionChunk.model_validate(out)


USAGES: list[tuple[object, dict[str, Any]]] = [
    (
        {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15, "cached": 0, "write": 0, "reasoning": 0},
    ),
    (
        {"prompt_tokens": 10, "completion_tokens": 5},
        {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15, "cached": 0, "write": 0, "reasoning": 0},
    ),
    (
        {
            "prompt_tokens": 100,
            "completion_tokens": 7,
            "total_tokens": 107,
            "prompt_tokens_details": {"cached_tokens": 64, "cache_write_tokens": 30, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 3, "accepted_prediction_tokens": 0},
        },
        {"prompt_tokens": 100, "completion_tokens": 7, "total_tokens": 107, "cached": 64, "write": 30, "reasoning": 3},
    ),
    (
        {"prompt_tokens": 20, "prompt_cache_hit_tokens": 16, "prompt_cache_miss_tokens": 4, "total_tokens": 20},
        {"prompt_tokens": 20, "completion_tokens": 0, "total_tokens": 20, "cached": 16, "write": 0, "reasoning": 0},
    ),
    (
        {"prompt_tokens": 20, "prompt_cache_hit_tokens": 16, "prompt_tokens_details": {"cached_tokens": 12}},
        {"prompt_tokens": 20, "completion_tokens": 0, "total_tokens": 20, "cached": 12, "write": 0, "reasoning": 0},
    ),
    (
        {"prompt_tokens": -5, "completion_tokens": 10**12, "total_tokens": "15", "prompt_tokens_details": [1]},
        {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "cached": 0, "write": 0, "reasoning": 0},
    ),
    (
        {"prompt_tokens": 12.0, "completion_tokens": 2.5, "total_tokens": True, "completion_tokens_details": "x"},
        {"prompt_tokens": 12, "completion_tokens": 0, "total_tokens": 0, "cached": 0, "write": 0, "reasoning": 0},
    ),
    (
        {"prompt_tokens": float("nan"), "completion_tokens": float("inf"), "prompt_cache_hit_tokens": [3]},
        {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "cached": 0, "write": 0, "reasoning": 0},
    ),
    (
        "garbage",
        {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "cached": 0, "write": 0, "reasoning": 0},
    ),
]


@pytest.mark.parametrize(("body", "expected"), USAGES)
def test_usage_from_json_never_raises(body: object, expected: dict[str, int]) -> None:
    usage = usage_from_json(body)
    assert {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "cached": usage.prompt_tokens_details.cached_tokens,
        "write": usage.prompt_tokens_details.cache_write_tokens,
        "reasoning": usage.completion_tokens_details.reasoning_tokens,
    } == expected


def test_usage_to_json() -> None:
    usage = chat_pb2.Usage(prompt_tokens=100, completion_tokens=7, total_tokens=107)
    usage.prompt_tokens_details.cached_tokens = 64
    usage.prompt_tokens_details.cache_write_tokens = 30
    usage.completion_tokens_details.reasoning_tokens = 3
    assert usage_to_json(usage) == {
        "prompt_tokens": 100,
        "completion_tokens": 7,
        "total_tokens": 107,
        "prompt_tokens_details": {"cached_tokens": 64, "cache_write_tokens": 30},
        "completion_tokens_details": {"reasoning_tokens": 3},
    }
    assert usage_to_json(chat_pb2.Usage())["prompt_tokens_details"] == {"cached_tokens": 0}


ANSWER_ERRORS: list[tuple[Any, str | None]] = [
    ("nope", None),
    ({"choices": {}}, "choices"),
    ({"choices": [1]}, "choices[0]"),
    ({"choices": [{"index": "0"}]}, "choices[0].index"),
    ({"choices": [{"message": {"content": 5}}]}, "choices[0].message.content"),
    ({"choices": [{"message": {"role": 5}}]}, "choices[0].message.role"),
    ({"choices": [{"message": {"tool_calls": [{"type": "custom"}]}}]}, "choices[0].message.tool_calls[0].type"),
    ({"choices": [{"finish_reason": 1}]}, "choices[0].finish_reason"),
    ({"id": ["x"]}, "id"),
    ({"created": "yesterday"}, "created"),
    ({"created": -1}, "created"),
]


@pytest.mark.parametrize(("body", "param"), ANSWER_ERRORS)
def test_completion_wire_errors(body: Any, param: str | None) -> None:
    with pytest.raises(WireError) as caught:
        completion_from_json(body)
    assert caught.value.param == param


CHUNK_ERRORS: list[tuple[Any, str | None]] = [
    ({"choices": [{"delta": []}]}, "choices[0].delta"),
    ({"choices": [{"delta": {"content": 1}}]}, "choices[0].delta.content"),
    ({"choices": [{"delta": {"reasoning_content": {}}}]}, "choices[0].delta.reasoning_content"),
    ({"choices": [{"delta": {"tool_calls": {}}}]}, "choices[0].delta.tool_calls"),
    ({"choices": [{"delta": {"tool_calls": [{"index": -1}]}}]}, "choices[0].delta.tool_calls[0].index"),
    ({"choices": [{"delta": {"tool_calls": [{"function": "f"}]}}]}, "choices[0].delta.tool_calls[0].function"),
    (
        {"choices": [{"delta": {"tool_calls": [{"function": {"arguments": 1}}]}}]},
        "choices[0].delta.tool_calls[0].function.arguments",
    ),
]


@pytest.mark.parametrize(("body", "param"), CHUNK_ERRORS)
def test_chunk_wire_errors(body: Any, param: str | None) -> None:
    with pytest.raises(WireError) as caught:
        chunk_from_json(body)
    assert caught.value.param == param


def test_lenient_reading_of_compatible_upstreams() -> None:
    response = completion_from_json({"created": 1745000000.7, "choices": [{"message": None}], "usage": None})
    assert response.created == 1745000000
    assert response.choices[0].message.role == "assistant"
    assert not response.HasField("usage")
    assert completion_to_json(response)["object"] == "chat.completion"


def test_hostile_upstream_answers_raise_only_wire_errors() -> None:
    assert (
        decode_mutations(completion_from_json, completion_to_json, list(COMPLETIONS.values()), rounds=2000, seed=2) > 0
    )
    assert decode_mutations(chunk_from_json, chunk_to_json, CHUNKS, rounds=2000, seed=3) > 0
