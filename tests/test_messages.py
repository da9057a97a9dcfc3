"""POST /v1/messages and /v1/messages/count_tokens, driven by the anthropic SDK through the gateway and gRPC."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import pytest

from tests.support.fake_upstream.ledger import Tokens
from tests.support.ledger_checks import assert_ledger_invariants
from tests.support.relay_env import RelayEnv, relay_env

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
TOOLS: Any = [
    {
        "name": "lookup",
        "description": "look",
        "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
    }
]
HAIKU = {"input": Decimal("1"), "cached": Decimal("0.10"), "write": Decimal("1.25"), "output": Decimal("5")}
DEEPSEEK = {"input": Decimal("0.27"), "cached": Decimal("0.07"), "write": Decimal("0.27"), "output": Decimal("1.10")}


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[RelayEnv]:
    async with relay_env(tmp_path) as started:
        yield started
        assert_ledger_invariants(tmp_path / "tollgate.db")


def claude(env: RelayEnv, *, bearer: bool = False, key: str | None = None) -> anthropic.AsyncAnthropic:
    credential = {"auth_token": key or env.key} if bearer else {"api_key": key or env.key}
    return anthropic.AsyncAnthropic(base_url=env.running.base_url, max_retries=0, **credential)  # type: ignore[arg-type]


async def _logs(env: RelayEnv) -> list[dict[str, Any]]:
    reply = await env.running.http.get("/api/v1/logs", headers=env.session)
    assert reply.status_code == 200, reply.text
    return list(reply.json()["logs"])


def _cost(tokens: Tokens, prices: dict[str, Decimal]) -> int:
    return math.ceil(
        tokens.input * prices["input"]
        + tokens.cache_read * prices["cached"]
        + tokens.cache_write * prices["write"]
        + tokens.output * prices["output"]
    )


async def test_unary_passes_the_body_through_to_anthropic_and_bills_cache_tokens(env: RelayEnv) -> None:
    system: Any = [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}]
    prior: Any = [
        {"type": "thinking", "thinking": "hmm", "signature": "sig-abc"},
        {"type": "text", "text": "earlier answer"},
    ]
    messages: Any = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": prior},
        {"role": "user", "content": "[[scenario: cache_read=40,cache_write=8]] hello claude"},
    ]
    async with claude(env) as client:
        message = await client.messages.create(
            model="claude-haiku-4-5",
            max_tokens=256,
            system=system,
            messages=messages,
            metadata={"user_id": "u-1"},
            extra_headers={"anthropic-beta": "prompt-caching-2024-07-31"},
        )
    assert message.model == "claude-haiku-4-5" and message.stop_reason == "end_turn"
    assert message.content[0].type == "text" and message.content[0].text.startswith("Echo: [[scenario")
    sent = env.upstream.requests_to("/v1/messages")[-1]
    assert sent.body["system"] == system and sent.body["messages"] == messages
    assert sent.body["metadata"] == {"user_id": "u-1"} and sent.body["max_tokens"] == 256
    assert sent.headers["anthropic-beta"] == "prompt-caching-2024-07-31"
    assert sent.headers["anthropic-version"] == "2023-06-01"
    bill = env.upstream.bill[-1].tokens
    assert (message.usage.cache_read_input_tokens, message.usage.cache_creation_input_tokens) == (40, 8)
    assert (message.usage.input_tokens, message.usage.output_tokens) == (bill.input, bill.output)
    (row,) = await _logs(env)
    assert (row["cached_tokens"], row["cache_write_tokens"], row["output_tokens"]) == (40, 8, bill.output)
    assert row["cost_micros"] == _cost(bill, HAIKU) and row["estimated"] is False


async def test_stream_gives_the_full_event_sequence_and_bills_the_last_cumulative_usage(env: RelayEnv) -> None:
    messages: Any = [{"role": "user", "content": "[[scenario: zero_input_in_start,cache_read=7]] stream please"}]
    async with claude(env, bearer=True) as client:
        async with client.messages.stream(model="claude-haiku-4-5", max_tokens=128, messages=messages) as stream:
            kinds = [event.type async for event in stream]
            final = await stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert {"content_block_start", "content_block_delta", "content_block_stop", "message_delta"} <= set(kinds)
    assert final.content[0].type == "text" and final.content[0].text.startswith("Echo:")
    bill = env.upstream.bill[-1].tokens
    (row,) = await _logs(env)
    assert row["stream"] is True and row["estimated"] is False
    assert (row["input_tokens"], row["cached_tokens"], row["output_tokens"]) == (bill.input, 7, bill.output)
    assert row["cost_micros"] == _cost(bill, HAIKU)


async def test_tools_and_images_pass_through_and_stream(env: RelayEnv) -> None:
    image: Any = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    question: Any = {"role": "user", "content": [{"type": "text", "text": "please call a tool"}, image]}
    async with claude(env) as client:
        first = await client.messages.create(
            model="claude-sonnet-4-6", max_tokens=200, messages=[question], tools=TOOLS
        )
        use = next(block for block in first.content if block.type == "tool_use")
        follow_up: Any = [
            question,
            {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "42"}]},
        ]
        async with client.messages.stream(
            model="claude-sonnet-4-6", max_tokens=200, messages=follow_up, tools=TOOLS
        ) as stream:
            final = await stream.get_final_message()
    assert first.stop_reason == "tool_use" and use.name == "lookup"
    sent = env.upstream.requests_to("/v1/messages")
    assert sent[0].body["messages"][0]["content"][1] == image
    assert sent[1].body["messages"][2]["content"][0]["tool_use_id"] == use.id
    assert final.content[0].type == "text" and final.content[0].text.startswith("Echo")


async def test_openai_compatible_channel_is_translated_both_ways(env: RelayEnv) -> None:
    messages: Any = [{"role": "user", "content": "please call a tool"}]
    async with claude(env) as client:
        answer = await client.messages.create(
            model="deepseek-chat", max_tokens=100, system="be brief", messages=messages, tools=TOOLS
        )
        async with client.messages.stream(
            model="deepseek-chat", max_tokens=100, messages=[{"role": "user", "content": "hello seek"}]
        ) as stream:
            text = "".join([chunk async for chunk in stream.text_stream])
            final = await stream.get_final_message()
    use = next(block for block in answer.content if block.type == "tool_use")
    assert answer.stop_reason == "tool_use" and use.name == "lookup" and isinstance(use.input, dict)
    sent = env.upstream.requests_to("/v1/chat/completions")
    assert sent[0].body["messages"][0] == {"role": "system", "content": "be brief"}
    assert sent[0].body["tools"][0]["function"]["name"] == "lookup"
    assert text.startswith("Echo: hello seek") and final.stop_reason == "end_turn"
    bills = env.upstream.bill[-2:]
    assert final.usage.output_tokens == bills[1].tokens.output
    rows = sorted(await _logs(env), key=lambda row: row["stream"])
    for row, bill in zip(rows, bills, strict=True):
        assert row["channel"] == "deepseek" and row["estimated"] is False
        assert row["cost_micros"] == _cost(bill.tokens, DEEPSEEK)


async def test_count_tokens_estimates_without_charging(env: RelayEnv) -> None:
    async with claude(env) as client:
        short = await client.messages.count_tokens(
            model="claude-haiku-4-5", messages=[{"role": "user", "content": "hi"}]
        )
        long = await client.messages.count_tokens(
            model="claude-haiku-4-5", messages=[{"role": "user", "content": "word " * 400}], tools=TOOLS
        )
    assert 0 < short.input_tokens < long.input_tokens
    assert await _logs(env) == [] and env.upstream.requests_to("/v1/messages") == []


async def test_errors_reach_the_sdk_as_its_exception_classes(env: RelayEnv) -> None:
    hello: Any = [{"role": "user", "content": "hi"}]
    async with claude(env, key="sk-not-a-real-key") as stranger:
        with pytest.raises(anthropic.AuthenticationError) as denied:
            await stranger.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=hello)
    body: Any = denied.value.body
    assert body["type"] == "error" and body["error"]["type"] == "authentication_error"
    async with claude(env) as client:
        with pytest.raises(anthropic.NotFoundError):
            await client.messages.create(model="no-such-model", max_tokens=10, messages=hello)
        with pytest.raises(anthropic.BadRequestError):
            await client.messages.create(model="claude-haiku-4-5", max_tokens=0, messages=hello)
        with pytest.raises(anthropic.ContentTooLargeError):
            big: Any = [{"role": "user", "content": "x" * (9 * 1024 * 1024)}]
            await client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=big)
        overloaded: Any = [{"role": "user", "content": "[[scenario: status=529]] busy"}]
        with pytest.raises(anthropic.OverloadedError) as busy:
            await client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=overloaded)
        busy_body: Any = busy.value.body
        assert busy_body["error"]["type"] == "overloaded_error"
        cut: Any = [{"role": "user", "content": "[[scenario: error_after=2]] cut"}]
        with pytest.raises(anthropic.APIStatusError):
            async with client.messages.stream(model="claude-haiku-4-5", max_tokens=50, messages=cut) as stream:
                async for _ in stream:
                    pass


async def test_quota_permission_and_request_errors(env: RelayEnv) -> None:
    hello: Any = [{"role": "user", "content": "hi"}]
    _, capped = await env.running.create_token(env.session, spend_cap_usd="0.0001")
    async with claude(env, key=capped) as client:
        with pytest.raises(anthropic.PaymentRequiredError) as broke:
            await client.messages.create(model="claude-haiku-4-5", max_tokens=4_000, messages=hello)
    broke_body: Any = broke.value.body
    assert broke_body["error"]["type"] == "billing_error"
    _, narrow = await env.running.create_token(env.session, allowed_models=["deepseek-chat"])
    async with claude(env, key=narrow) as client:
        with pytest.raises(anthropic.PermissionDeniedError):
            await client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=hello)
    async with claude(env) as client:
        with pytest.raises(anthropic.BadRequestError, match="context window"):
            huge: Any = [{"role": "user", "content": "word " * 60_000}]
            await client.messages.create(model="deepseek-chat", max_tokens=8_000, messages=huge)
    unversioned = await env.running.http.post(
        "/v1/messages",
        json={"model": "claude-haiku-4-5", "max_tokens": 10, "messages": hello},
        headers={"x-api-key": env.key},
    )
    assert unversioned.status_code == 400
    assert unversioned.json()["error"]["type"] == "invalid_request_error"
    assert env.upstream.requests_to("/v1/messages") == []


async def test_rate_limit_is_a_429(tmp_path: Path) -> None:
    limits = "\n[limits]\naccount_requests_per_minute = 1\n"
    async with relay_env(tmp_path, extra_config=limits) as env, claude(env) as client:
        hello: Any = [{"role": "user", "content": "hi"}]
        await client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=hello)
        with pytest.raises(anthropic.RateLimitError) as limited:
            await client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=hello)
    limited_body: Any = limited.value.body
    assert limited_body["error"]["type"] == "rate_limit_error"
    assert limited.value.response.headers.get("retry-after")
