"""The relay end to end with the official openai SDK: Tollgate in front of the fake OpenAI/DeepSeek upstream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from server.log_format import TextFormatter
from tests.support.relay_env import UPSTREAM_KEY, RelayEnv, relay_env

TOOLS: Any = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look something up",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
        },
    }
]


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[RelayEnv]:
    async with relay_env(tmp_path) as started:
        yield started


async def test_unary_chat(env: RelayEnv) -> None:
    async with env.client() as client:
        answer = await client.chat.completions.create(
            model="deepseek-chat", messages=[{"role": "user", "content": "hello there"}]
        )
    assert answer.model == "deepseek-chat"
    assert answer.choices[0].message.content == "Echo: hello there Echo: hello there Echo: hello"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None and answer.usage.completion_tokens == 8
    sent = env.upstream.requests_to("/v1/chat/completions")[-1]
    assert sent.body["model"] == "deepseek-chat" and sent.body["stream"] is False
    assert sent.headers["authorization"] == "<redacted>"  # the fake saw a key; Tollgate's, not the client's
    assert env.key not in str(sent.headers)


async def test_streamed_chat_strips_usage_unless_asked(env: RelayEnv) -> None:
    async with env.client() as client:
        stream = await client.chat.completions.create(
            model="deepseek-chat", messages=[{"role": "user", "content": "stream me"}], stream=True
        )
        chunks = [chunk async for chunk in stream]
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text.startswith("Echo: stream me")
        assert all(chunk.usage is None for chunk in chunks)
        sent = env.upstream.requests_to("/v1/chat/completions")[-1].body
        assert sent["stream_options"] == {"include_usage": True}
        stream = await client.chat.completions.create(
            model="deepseek-chat",
            messages=[{"role": "user", "content": "stream me"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 8


async def test_tool_calls_unary_and_streamed(env: RelayEnv) -> None:
    messages: Any = [{"role": "user", "content": "please call a tool now"}]
    async with env.client() as client:
        answer = await client.chat.completions.create(model="deepseek-chat", messages=messages, tools=TOOLS)
        call = answer.choices[0].message.tool_calls[0]  # type: ignore[index]
        assert answer.choices[0].finish_reason == "tool_calls"
        assert call.function.name == "lookup"  # type: ignore[union-attr]
        async with client.chat.completions.stream(model="deepseek-chat", messages=messages, tools=TOOLS) as stream:
            final = await stream.get_final_completion()
    streamed = final.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert streamed.function.name == "lookup"
    assert streamed.function.arguments == call.function.arguments  # type: ignore[union-attr]


async def test_reasoning_content_passes_through(env: RelayEnv) -> None:
    async with env.client() as client:
        stream = await client.chat.completions.create(
            model="deepseek-reasoner", messages=[{"role": "user", "content": "think"}], stream=True
        )
        pieces = [
            (chunk.choices[0].delta.model_extra or {}).get("reasoning_content") or ""
            async for chunk in stream
            if chunk.choices
        ]
        reasoning = "".join(pieces)
    assert reasoning.strip()


async def test_unmodelled_fields_reach_the_upstream(env: RelayEnv) -> None:
    async with env.client() as client:
        await client.chat.completions.create(
            model="deepseek-chat",
            messages=[{"role": "user", "content": "x"}],
            extra_body={"thinking": {"type": "disabled"}},
            temperature=0.3,
        )
    sent = env.upstream.requests_to("/v1/chat/completions")[-1].body
    assert sent["thinking"] == {"type": "disabled"}
    assert sent["temperature"] == 0.3


async def test_images_reach_a_vision_model_and_are_refused_by_others(env: RelayEnv) -> None:
    image = {"type": "image_url", "image_url": {"url": "https://example.invalid/cat.png"}}
    content: Any = [{"type": "text", "text": "what is this"}, image]
    async with env.client() as client:
        with pytest.raises(openai.BadRequestError) as refused:
            await client.chat.completions.create(model="deepseek-chat", messages=[{"role": "user", "content": content}])
    assert "does not accept images" in refused.value.message
    assert env.upstream.requests_to("/v1/chat/completions") == []


async def test_embeddings(env: RelayEnv) -> None:
    async with env.client() as client:
        result = await client.embeddings.create(model="text-embedding-3-small", input=["one", "two"])
    assert [item.index for item in result.data] == [0, 1]
    assert len(result.data[0].embedding) == 8
    assert result.model == "text-embedding-3-small"


@pytest.mark.parametrize(
    ("kwargs", "error", "code"),
    [
        ({"model": "no-such-model"}, openai.NotFoundError, "model_not_found"),
        ({"messages": [{"role": "user", "content": "x" * 400_000}]}, openai.BadRequestError, "context_length_exceeded"),
        ({"max_tokens": 70_000}, openai.BadRequestError, "context_length_exceeded"),
        ({"extra_body": {"api_base": "http://evil.invalid"}}, openai.BadRequestError, "invalid_request_error"),
        ({"messages": [{"role": "user", "content": "[[scenario: status=400]]"}]}, openai.BadRequestError, None),
    ],
)
async def test_errors_map_to_the_sdk_classes(
    env: RelayEnv, kwargs: dict[str, object], error: type[Exception], code: str | None
) -> None:
    request: dict[str, object] = {"model": "deepseek-chat", "messages": [{"role": "user", "content": "hi"}], **kwargs}
    async with env.client() as client:
        with pytest.raises(error) as caught:
            await client.chat.completions.create(**request)  # type: ignore[call-overload]
    if code is not None:
        assert caught.value.code == code  # type: ignore[attr-defined]
    assert UPSTREAM_KEY not in str(caught.value.body)  # type: ignore[attr-defined]


async def test_upstream_failures_are_retried_before_the_first_byte(env: RelayEnv) -> None:
    async with env.client() as client:
        answer = await client.chat.completions.create(
            model="deepseek-chat", messages=[{"role": "user", "content": "[[scenario: status=500,fail_times=1]] hi"}]
        )
    assert answer.choices[0].message.content
    attempts = [r.attempt for r in env.upstream.requests_to("/v1/chat/completions")]
    assert attempts == [1, 2]


async def test_persistent_upstream_failure_is_a_503_with_retry_hint(env: RelayEnv) -> None:
    async with env.client() as client:
        with pytest.raises(openai.InternalServerError) as caught:
            await client.chat.completions.create(
                model="deepseek-chat", messages=[{"role": "user", "content": "[[scenario: status=503]]"}]
            )
    assert caught.value.status_code == 503
    assert len(env.upstream.requests_to("/v1/chat/completions")) == 3  # first attempt + 2 retries


async def test_cut_stream_raises_in_the_sdk(env: RelayEnv) -> None:
    async with env.client() as client:
        stream = await client.chat.completions.create(
            model="deepseek-chat", messages=[{"role": "user", "content": "[[scenario: cut_after=3]]"}], stream=True
        )
        with pytest.raises(openai.APIError):
            async for _ in stream:
                pass


async def test_a_stream_that_stalls_midway_ends_with_an_in_band_error(env: RelayEnv) -> None:
    # relay_env's idle timeout is 2 s; after its first chunks, this upstream pauses 3 s before each piece
    content = "[[scenario: chunks=3,chunk_interval_ms=3000]]"
    async with env.client() as client:
        stream = await client.chat.completions.create(
            model="deepseek-chat", messages=[{"role": "user", "content": content}], stream=True
        )
        received = []
        with pytest.raises(openai.APIError) as caught:
            async for chunk in stream:
                received.append(chunk)
    assert received  # what came before the stall reached the client
    assert "stalled mid-stream" in str(caught.value)


async def test_first_byte_timeout_is_a_504(tmp_path: Path) -> None:
    async with relay_env(tmp_path, first_byte=0.3) as env, env.client() as client:
        with pytest.raises(openai.APIStatusError) as caught:
            await client.chat.completions.create(
                model="deepseek-chat", messages=[{"role": "user", "content": "[[scenario: first_byte_ms=2000]]"}]
            )
    assert caught.value.status_code == 504


async def test_a_unary_answer_past_the_total_deadline_is_a_504(tmp_path: Path) -> None:
    # the first-byte wait (10 s) outlasts the total deadline of a unary answer (5 s)
    no_retries = {"TOLLGATE_RELAY_MAX_RETRIES": "0"}
    async with relay_env(tmp_path, first_byte=10, environ=no_retries) as env, env.client() as client:
        with pytest.raises(openai.APIStatusError) as caught:
            await client.chat.completions.create(
                model="deepseek-chat", messages=[{"role": "user", "content": "[[scenario: first_byte_ms=7000]]"}]
            )
    assert caught.value.status_code == 504


async def test_client_disconnect_cancels_the_upstream_request_when_not_drained(tmp_path: Path) -> None:
    async with relay_env(tmp_path, environ={"TOLLGATE_RELAY_DISCONNECT_DRAIN_SECONDS": "0"}) as env:
        await _leave_a_stream(env)


async def _leave_a_stream(env: RelayEnv) -> None:
    body = {
        "model": "deepseek-chat",
        "stream": True,
        "messages": [{"role": "user", "content": "[[scenario: chunks=200,chunk_interval_ms=50]]"}],
    }
    headers = {"authorization": f"Bearer {env.key}"}
    async with httpx.AsyncClient(base_url=env.running.base_url) as http:
        async with http.stream("POST", "/v1/chat/completions", json=body, headers=headers) as reply:
            async for line in reply.aiter_lines():
                if line.startswith("data:"):
                    break
    for _ in range(100):
        if env.upstream.client_disconnects:
            break
        await asyncio.sleep(0.05)
    assert env.upstream.client_disconnects == 1
    assert env.upstream.in_flight == 0


async def test_every_call_ends_with_one_metadata_line_and_no_content(
    env: RelayEnv, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="server.services.relay")
    canary = "CANARY-prompt-text-7f3a"
    async with env.client() as client:
        await client.chat.completions.create(model="deepseek-chat", messages=[{"role": "user", "content": canary}])
        stream = await client.chat.completions.create(
            model="deepseek-chat",
            messages=[{"role": "user", "content": f"{canary} [[scenario: cut_after=2]]"}],
            stream=True,
        )
        with pytest.raises(openai.APIError):
            async for _ in stream:
                pass
    lines = [TextFormatter().format(record) for record in caplog.records if record.getMessage() == "relayed"]
    assert len(lines) == 2
    assert "status=ok" in lines[0] and "channel=deepseek" in lines[0] and "estimated=False" in lines[0]
    assert "status=upstream_error" in lines[1] and "estimated=True" in lines[1] and "stream=True" in lines[1]
    assert all(canary not in record.getMessage() for record in caplog.records)
    assert "Echo" not in caplog.text


async def test_upstream_choosing_headers_are_refused(env: RelayEnv) -> None:
    async with env.client(default_headers={"X-Api-Base": "http://evil.invalid"}) as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(model="deepseek-chat", messages=[{"role": "user", "content": "x"}])
    assert "configuration" in caught.value.message
    assert env.upstream.requests_to("/v1/chat/completions") == []


@pytest.mark.parametrize(
    ("body", "message", "param"),
    [
        (b'"temperature": NaN', "the body is not valid JSON", None),  # NaN is not JSON (Python's json reads it)
        (b'"user": "\\ud800"', "the body is not valid JSON", None),  # a lone surrogate is not text
        (b'"max_tokens": 18446744073709551616', "expected an integer", "max_tokens"),  # past 64 bits: a float
    ],
)
async def test_a_body_that_is_not_strict_json_is_refused_before_the_upstream(
    env: RelayEnv, body: bytes, message: str, param: str | None
) -> None:
    content = b'{"model": "deepseek-chat", "messages": [{"role": "user", "content": "x"}], ' + body + b"}"
    async with httpx.AsyncClient(base_url=env.running.base_url) as http:
        response = await http.post(
            "/v1/chat/completions",
            content=content,
            headers={"authorization": f"Bearer {env.key}", "content-type": "application/json"},
        )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and message in error["message"] and error["param"] == param
    assert env.upstream.requests_to("/v1/chat/completions") == []
