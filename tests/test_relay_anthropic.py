"""The relay to an Anthropic channel, driven by the openai SDK: translation both ways, usage, fallbacks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.support.relay_env import RelayEnv, relay_env

TOOLS: Any = [
    {
        "type": "function",
        "function": {"name": "lookup", "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}},
    }
]
PNG = (
    "data:image/png;base64,"
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[RelayEnv]:
    async with relay_env(tmp_path) as started:
        yield started


async def test_unary_with_system_prompt_and_default_max_tokens(env: RelayEnv) -> None:
    messages: Any = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello claude"}]
    async with env.client() as client:
        answer = await client.chat.completions.create(model="claude-haiku-4-5", messages=messages)
    assert answer.model == "claude-haiku-4-5"
    assert answer.choices[0].message.content == "Echo: hello claude Echo: hello claude Echo: hello"
    assert answer.choices[0].finish_reason == "stop"
    sent = env.upstream.requests_to("/v1/messages")[-1]
    assert sent.body["system"] == "be brief"
    assert sent.body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hello claude"}]}]
    assert sent.body["max_tokens"] == 64_000  # Anthropic requires it: the model's own limit
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert answer.usage is not None and answer.usage.completion_tokens == 8


async def test_stream_with_usage_and_cache_tokens(env: RelayEnv) -> None:
    messages: Any = [{"role": "user", "content": "[[scenario: cache_read=7,cache_write=3]] stream please"}]
    async with env.client() as client:
        stream = await client.chat.completions.create(
            model="claude-haiku-4-5", messages=messages, stream=True, stream_options={"include_usage": True}
        )
        chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("Echo:")
    usage = chunks[-1].usage
    assert usage is not None and usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 7
    assert usage.completion_tokens == 8
    billed = env.upstream.bill[-1].tokens
    assert usage.prompt_tokens == billed.input + billed.cache_read + billed.cache_write


async def test_cumulative_usage_is_not_summed_and_zero_input_is_corrected(env: RelayEnv) -> None:
    messages: Any = [{"role": "user", "content": "[[scenario: zero_input_in_start]] count me"}]
    async with env.client() as client:
        stream = await client.chat.completions.create(
            model="claude-haiku-4-5", messages=messages, stream=True, stream_options={"include_usage": True}
        )
        chunks = [chunk async for chunk in stream]
    usage = chunks[-1].usage
    billed = env.upstream.bill[-1].tokens
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (billed.prompt, billed.output)


async def test_tools_and_images_translate(env: RelayEnv) -> None:
    content: Any = [{"type": "text", "text": "please call a tool"}, {"type": "image_url", "image_url": {"url": PNG}}]
    async with env.client() as client:
        answer = await client.chat.completions.create(
            model="claude-sonnet-4-6", messages=[{"role": "user", "content": content}], tools=TOOLS
        )
        call = answer.choices[0].message.tool_calls[0]  # type: ignore[index]
        assert answer.choices[0].finish_reason == "tool_calls"
        follow_up: Any = [
            {"role": "user", "content": content},
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": "42"},
        ]
        async with client.chat.completions.stream(model="claude-sonnet-4-6", messages=follow_up, tools=TOOLS) as s:
            final = await s.get_final_completion()
    sent = env.upstream.requests_to("/v1/messages")
    image = sent[0].body["messages"][0]["content"][1]
    assert image["type"] == "image" and image["source"]["type"] == "base64"
    assert image["source"]["media_type"] == "image/png"
    turns = sent[1].body["messages"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert turns[1]["content"][0]["type"] == "tool_use" and turns[1]["content"][0]["id"] == call.id
    assert turns[2]["content"][0] == {"type": "tool_result", "tool_use_id": call.id, "content": "42"}
    assert final.choices[0].message.content and final.choices[0].message.content.startswith("Echo")


async def test_streamed_tool_call_accumulates(env: RelayEnv) -> None:
    messages: Any = [{"role": "user", "content": "call a tool please"}]
    async with env.client() as client:
        async with client.chat.completions.stream(model="claude-haiku-4-5", messages=messages, tools=TOOLS) as s:
            final = await s.get_final_completion()
    call = final.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "lookup"
    assert call.function.arguments.startswith('{"query"')


async def test_fallback_model_serves_and_is_named(env: RelayEnv) -> None:
    messages: Any = [{"role": "user", "content": "[[scenario: status=529,fail_times=3]] fall back"}]
    async with env.client() as client:
        answer = await client.chat.completions.create(model="claude-sonnet-4-6", messages=messages)
    assert answer.model == "claude-haiku-4-5"
    models = [r.body["model"] for r in env.upstream.requests_to("/v1/messages")]
    assert models[:3] == ["claude-sonnet-4-6"] * 3 and models[-1] == "claude-haiku-4-5"


async def test_error_event_mid_stream_reaches_the_sdk(env: RelayEnv) -> None:
    messages: Any = [{"role": "user", "content": "[[scenario: error_after=2]]"}]
    async with env.client() as client:
        stream = await client.chat.completions.create(model="claude-haiku-4-5", messages=messages, stream=True)
        with pytest.raises(openai.APIError):
            async for _ in stream:
                pass


async def test_anthropic_client_errors_come_back_as_openai_errors(env: RelayEnv) -> None:
    messages: Any = [{"role": "user", "content": "[[scenario: status=400]]"}]
    async with env.client() as client:
        with pytest.raises(openai.BadRequestError):
            await client.chat.completions.create(model="claude-haiku-4-5", messages=messages)
    assert len(env.upstream.requests_to("/v1/messages")) == 1


async def test_next_tier_answers_when_the_primary_channel_fails(tmp_path: Path) -> None:
    backup = """
[[channels]]
name = "backup"
type = "simulated"
models = ["claude-opus-4-7"]
priority = -1
"""
    async with relay_env(tmp_path, extra_config=backup) as env, env.client() as client:
        messages: Any = [{"role": "user", "content": "[[scenario: status=500]] hi"}]
        answer = await client.chat.completions.create(model="claude-opus-4-7", messages=messages)
    assert answer.model == "claude-opus-4-7"
    assert "simulated" in (answer.choices[0].message.content or "")
