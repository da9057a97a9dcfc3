"""Admission end to end: per-token slots, rate windows and the process cap, on memory and on Redis."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import openai
import pytest
from tollgate.v1 import chat_pb2, relay_pb2, relay_pb2_grpc

from tests.support.grpc_clients import error_details
from tests.support.redis_server import private_redis, shared_redis_url, unique_prefix
from tests.support.relay_env import RelayEnv, relay_env

LONG_STREAM = "[[scenario: chunks=8, chunk_interval_ms=400]] hold a slot"


def _limits_env(backend: str) -> dict[str, str]:
    if backend == "memory":
        return {}
    return {
        "TOLLGATE_REDIS_URL": shared_redis_url(),
        "TOLLGATE_LIMITS_REDIS_PREFIX": unique_prefix(),
        # these tests are not about outages: on a loaded machine a 0.2 s answer is not one
        "TOLLGATE_LIMITS_REDIS_TIMEOUT_SECONDS": "2",
    }


@contextlib.asynccontextmanager
async def _env(tmp_path: Path, backend: str, extra_config: str = "") -> AsyncIterator[RelayEnv]:
    async with relay_env(tmp_path, extra_config=extra_config, environ=_limits_env(backend)) as env:
        yield env


async def _token_id(env: RelayEnv) -> str:
    tokens = (await env.running.http.get("/api/v1/tokens", headers=env.session)).json()["tokens"]
    return str(tokens[0]["id"])


async def _held(env: RelayEnv, token_id: str) -> int:
    return await env.running.tollgate.domain.admission.held(token_id)


async def _slots_drain(env: RelayEnv, token_id: str, within: float = 1.0) -> None:
    deadline = time.monotonic() + within
    while await _held(env, token_id):
        assert time.monotonic() < deadline, f"{await _held(env, token_id)} slots still held after {within} s"
        await asyncio.sleep(0.05)


async def _stream_to_end(client: openai.AsyncOpenAI) -> tuple[int, str | None]:
    """(status, Retry-After) of one long stream read to its end."""
    try:
        stream = await client.chat.completions.create(
            model="deepseek-chat", messages=[{"role": "user", "content": LONG_STREAM}], stream=True
        )
        async for _ in stream:
            pass
    except openai.APIStatusError as exc:
        return exc.status_code, exc.response.headers.get("retry-after")
    return 200, None


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_150_long_streams_on_one_token_admit_exactly_100(tmp_path: Path, backend: str) -> None:
    async with _env(tmp_path, backend) as env:
        token_id = await _token_id(env)
        async with env.client() as client:
            outcomes = await asyncio.gather(*(_stream_to_end(client) for _ in range(150)))
        statuses = [status for status, _ in outcomes]
        assert statuses.count(200) == 100 and statuses.count(429) == 50, statuses
        assert all(retry is not None and int(retry) >= 1 for status, retry in outcomes if status == 429)
        await _slots_drain(env, token_id)


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_clients_that_cancel_mid_stream_give_their_slots_back(tmp_path: Path, backend: str) -> None:
    async with _env(tmp_path, backend) as env:
        token_id = await _token_id(env)
        started = asyncio.Event()
        opened = 0

        async def leave_after_first_chunk(client: openai.AsyncOpenAI) -> None:
            nonlocal opened
            stream = await client.chat.completions.create(
                model="deepseek-chat", messages=[{"role": "user", "content": LONG_STREAM}], stream=True
            )
            await anext(aiter(stream))
            opened += 1
            if opened == 100:
                started.set()
            await started.wait()
            await stream.close()

        async with env.client() as client:
            await asyncio.gather(*(leave_after_first_chunk(client) for _ in range(100)))
        await _slots_drain(env, token_id)


async def test_redis_stopped_mid_test_keeps_requests_flowing_within_the_process_share(tmp_path: Path) -> None:
    with private_redis() as (url, server):
        environ = {"TOLLGATE_REDIS_URL": url, "TOLLGATE_LIMITS_REPLICAS": "2"}
        async with relay_env(tmp_path, environ=environ) as env:
            _, key = await env.running.create_token(env.session, name="small", max_concurrency=10)
            client = openai.AsyncOpenAI(api_key=key, base_url=f"{env.running.base_url}/v1", max_retries=0)
            async with client:
                before = [asyncio.ensure_future(_stream_to_end(client)) for _ in range(10)]
                await asyncio.sleep(0.5)  # all ten hold slots in Redis
                server.kill()
                server.wait()
                during = await asyncio.gather(*(_stream_to_end(client) for _ in range(20)))
                first = await asyncio.gather(*before)
            assert [status for status, _ in first] == [200] * 10
            statuses = [status for status, _ in during]
            assert statuses.count(200) == 5 and statuses.count(429) == 15, statuses  # 10 / 2 replicas


async def test_requests_per_minute_over_rest_and_grpc(tmp_path: Path) -> None:
    async with relay_env(tmp_path) as env:
        _, key = await env.running.create_token(env.session, name="rpm", requests_per_minute=2)
        client = openai.AsyncOpenAI(api_key=key, base_url=f"{env.running.base_url}/v1", max_retries=0)
        async with client:
            for _ in range(2):
                await client.chat.completions.create(
                    model="deepseek-chat", messages=[{"role": "user", "content": "hi"}]
                )
            with pytest.raises(openai.RateLimitError) as refused:
                await client.chat.completions.create(
                    model="deepseek-chat", messages=[{"role": "user", "content": "hi"}]
                )
        assert refused.value.code == "rate_limit_exceeded"
        assert 1 <= int(refused.value.response.headers["retry-after"]) <= 120  # two buckets at most
        stub = relay_pb2_grpc.RelayServiceStub(env.channel)
        params = chat_pb2.ChatCompletionParams(
            model="deepseek-chat", messages=[chat_pb2.ChatMessage(role="user", content="hi")]
        )
        with pytest.raises(grpc.aio.AioRpcError) as rpc:
            await stub.CreateChatCompletion(
                relay_pb2.CreateChatCompletionRequest(params=params), metadata=(("authorization", f"Bearer {key}"),)
            )
        assert rpc.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        _, retry = error_details(rpc.value)
        assert retry is not None and retry.retry_delay.ToTimedelta().total_seconds() > 0


async def test_tokens_per_minute_are_corrected_to_what_was_used(tmp_path: Path) -> None:
    async with relay_env(tmp_path) as env:
        _, key = await env.running.create_token(env.session, name="tpm", tokens_per_minute=1000)
        client = openai.AsyncOpenAI(api_key=key, base_url=f"{env.running.base_url}/v1", max_retries=0)
        messages: Any = [{"role": "user", "content": "hi"}]
        async with client:
            # Each counts ~900 when admitted; the short answers are corrected down, so the next fits.
            for _ in range(3):
                await client.chat.completions.create(model="deepseek-chat", messages=messages, max_tokens=900)
            with pytest.raises(openai.BadRequestError):  # alone over the limit: no retry can help
                await client.chat.completions.create(model="deepseek-chat", messages=messages, max_tokens=2000)


async def test_the_process_cap_answers_a_fast_503_with_retry_after(tmp_path: Path) -> None:
    async with relay_env(tmp_path, environ={"TOLLGATE_LIMITS_MAX_OPEN_REQUESTS": "3"}) as env:
        async with env.client() as client:
            outcomes = await asyncio.gather(*(_stream_to_end(client) for _ in range(5)))
        statuses = [status for status, _ in outcomes]
        assert statuses.count(200) == 3 and statuses.count(503) == 2, statuses
        assert all(retry == "1" for status, retry in outcomes if status == 503)
        assert env.running.tollgate.domain.admission.open_requests == 0
