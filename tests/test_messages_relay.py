"""/v1/messages on the relay's paths: fallbacks, large bodies, a client that leaves, a failure mid-stream."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from tests.support.ledger_checks import assert_ledger_invariants
from tests.support.relay_env import RelayEnv, relay_env

HEADERS = {"anthropic-version": "2023-06-01"}


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[RelayEnv]:
    async with relay_env(tmp_path) as started:
        yield started
        assert_ledger_invariants(tmp_path / "tollgate.db")


async def _rows(env: RelayEnv) -> list[dict[str, Any]]:
    for _ in range(100):
        rows = list((await env.running.http.get("/api/v1/logs", headers=env.session)).json()["logs"])
        if rows:
            return rows
        await asyncio.sleep(0.05)
    return []


async def test_fallback_model_serves_and_is_named(env: RelayEnv) -> None:
    messages: Any = [{"role": "user", "content": "[[scenario: status=529,fail_times=3]] fall back"}]
    async with anthropic.AsyncAnthropic(base_url=env.running.base_url, api_key=env.key, max_retries=0) as client:
        message = await client.messages.create(model="claude-sonnet-4-6", max_tokens=50, messages=messages)
    assert message.model == "claude-haiku-4-5"
    models = [request.body["model"] for request in env.upstream.requests_to("/v1/messages")]
    assert models[:3] == ["claude-sonnet-4-6"] * 3 and models[-1] == "claude-haiku-4-5"


async def test_a_body_near_the_8_mib_cap_crosses_the_grpc_hop(env: RelayEnv) -> None:
    data = base64.b64encode(b"\x89PNG" + b"\0" * (5 * 1024 * 1024)).decode()
    image: Any = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}}
    messages: Any = [{"role": "user", "content": [{"type": "text", "text": "look"}, image]}]
    async with anthropic.AsyncAnthropic(base_url=env.running.base_url, api_key=env.key, max_retries=0) as client:
        message = await client.messages.create(model="claude-sonnet-4-6", max_tokens=50, messages=messages)
    assert message.stop_reason == "end_turn"
    assert env.upstream.requests_to("/v1/messages")[-1].body["messages"][0]["content"][1] == image


async def test_a_client_that_leaves_is_charged_for_what_was_generated(env: RelayEnv) -> None:
    body = {
        "model": "claude-haiku-4-5",
        "max_tokens": 1000,
        "stream": True,
        "messages": [{"role": "user", "content": "[[scenario: chunks=200,chunk_interval_ms=20]]"}],
    }
    async with (
        httpx.AsyncClient(base_url=env.running.base_url) as http,
        http.stream("POST", "/v1/messages", json=body, headers={"x-api-key": env.key, **HEADERS}) as reply,
    ):
        seen = 0
        async for line in reply.aiter_lines():
            seen += line == "event: content_block_delta"
            if seen == 5:
                break
    (row,) = await _rows(env)
    assert row["status"] == "cancelled" and row["estimated"] is True and row["cost_micros"] > 0
    account = (await env.running.http.get("/api/v1/account", headers=env.session)).json()
    assert account["held_micros"] == 0


async def test_an_upstream_error_mid_stream_is_an_error_event(env: RelayEnv) -> None:
    body = {
        "model": "claude-haiku-4-5",
        "max_tokens": 100,
        "stream": True,
        "messages": [{"role": "user", "content": "[[scenario: error_after=2]] go"}],
    }
    headers = {"authorization": f"Bearer {env.key}", **HEADERS}
    reply = await env.running.http.post("/v1/messages", json=body, headers=headers)
    assert reply.status_code == 200
    events = [block.split("\n") for block in reply.text.strip().split("\n\n") if not block.startswith(":")]
    assert events[0][0] == "event: message_start" and events[-1][0] == "event: error"
    assert '"type":"error"' in events[-1][1] and "message_stop" not in reply.text
    (row,) = await _rows(env)
    assert row["status"] != "ok"


async def test_thinking_streams_from_both_kinds_of_channel(env: RelayEnv) -> None:
    question: Any = [{"role": "user", "content": "think first"}]
    thinking: Any = {"type": "enabled", "budget_tokens": 1024}
    async with anthropic.AsyncAnthropic(base_url=env.running.base_url, api_key=env.key, max_retries=0) as client:
        async with client.messages.stream(
            model="claude-sonnet-4-6", max_tokens=2048, messages=question, thinking=thinking
        ) as stream:
            claude = await stream.get_final_message()
        async with client.messages.stream(model="deepseek-reasoner", max_tokens=2048, messages=question) as stream:
            seek = await stream.get_final_message()
    assert env.upstream.requests_to("/v1/messages")[-1].body["thinking"] == thinking
    assert claude.content[0].type == "thinking" and claude.content[0].signature
    assert claude.content[1].type == "text"
    assert seek.content[0].type == "thinking" and seek.content[0].thinking
    assert seek.content[1].type == "text" and seek.content[1].text.startswith("Echo")
    rows = (await env.running.http.get("/api/v1/logs", headers=env.session)).json()["logs"]
    bills = env.upstream.bill[-2:]
    assert sorted(row["output_tokens"] for row in rows) == sorted(bill.tokens.output for bill in bills)
