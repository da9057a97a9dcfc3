"""One contract, three limiters: process memory, Redis, and Redis behind the outage fallback."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from server.limits.base import Limiter, sliding_count, window_retry_after
from server.limits.fallback import FallbackLimiter
from server.limits.memory import MemoryLimiter
from server.limits.redis import RedisLimiter
from tests.support.redis_server import private_redis, shared_redis_url, unique_prefix


@pytest.fixture(params=["memory", "redis", "fallback"])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[Limiter]:
    if request.param == "memory":
        built: Limiter = MemoryLimiter()
    else:
        redis_limiter = RedisLimiter.from_url(shared_redis_url(), timeout=1.0, prefix=unique_prefix())
        built = redis_limiter if request.param == "redis" else FallbackLimiter(redis_limiter, replicas=2)
    yield built
    await built.close()


async def test_leases_up_to_the_limit_then_refused_until_one_is_released(limiter: Limiter) -> None:
    assert [await limiter.acquire_lease("k", f"l{n}", 3, 10) for n in range(4)] == [True, True, True, False]
    assert await limiter.held_leases("k") == 3
    await limiter.release_lease("k", "l1")
    assert await limiter.acquire_lease("k", "l9", 3, 10)
    assert await limiter.held_leases("other") == 0


async def test_a_lease_not_renewed_expires_and_a_renewed_one_does_not(limiter: Limiter) -> None:
    assert await limiter.acquire_lease("k", "kept", 2, 0.3)
    assert await limiter.acquire_lease("k", "lost", 2, 0.3)
    for _ in range(3):
        await asyncio.sleep(0.15)
        await limiter.renew_leases({"k": ["kept"]}, 0.3)
    assert await limiter.held_leases("k") == 1
    await limiter.renew_leases({"k": ["lost"]}, 10)  # an expired lease is not brought back
    assert await limiter.held_leases("k") == 1


async def test_window_admits_up_to_the_limit_and_says_when_to_come_back(limiter: Limiter) -> None:
    results = [await limiter.consume("w", 1, 3, 60) for _ in range(4)]
    assert [result.admitted for result in results] == [True, True, True, False]
    assert 0 < results[-1].retry_after <= 120
    assert len({result.bucket for result in results}) == 1


async def test_correction_gives_back_what_a_request_did_not_use(limiter: Limiter) -> None:
    first = await limiter.consume("t", 900, 1000, 60)
    assert first.admitted
    assert not (await limiter.consume("t", 900, 1000, 60)).admitted
    await limiter.correct("t", first.bucket, -850, 60)
    assert (await limiter.consume("t", 900, 1000, 60)).admitted
    await limiter.correct("t", first.bucket, -(10**6), 60)  # never below zero: a refund cannot become credit
    assert (await limiter.consume("t", 1000, 1000, 60)).admitted
    assert not (await limiter.consume("t", 1, 1000, 60)).admitted


def test_sliding_window_arithmetic() -> None:
    assert sliding_count(10, 5, 30, 60) == 10
    # 10 in the previous bucket, 0 now, limit 5: half of the previous bucket must slide out.
    assert window_retry_after(10, 0, 0, 60, 1, 5) == pytest.approx(60 * (1 - 4 / 10))
    # The current bucket alone is over: wait for the next bucket, then for today's count to slide out.
    assert window_retry_after(0, 8, 20, 60, 1, 5) == pytest.approx(40 + 60 * (1 - 4 / 8))


async def test_redis_keys_are_prefixed_and_always_expire() -> None:
    url, prefix = shared_redis_url(), unique_prefix()
    limiter = RedisLimiter.from_url(url, timeout=1.0, prefix=prefix)
    client = aioredis.Redis.from_url(url)
    try:
        await limiter.acquire_lease("{tok:a}:leases", "l1", 5, 10)
        await limiter.consume("{tok:a}:rpm", 1, 5, 60)
        keys = [key async for key in client.scan_iter(match=prefix + "*")]
        assert sorted(keys) == [f"{prefix}{{tok:a}}:leases".encode(), f"{prefix}{{tok:a}}:rpm".encode()]
        assert [await client.pttl(key) > 0 for key in keys] == [True, True]
    finally:
        await limiter.close()
        await client.aclose()


async def test_redis_scripts_are_reloaded_after_script_flush() -> None:
    url = shared_redis_url()
    limiter = RedisLimiter.from_url(url, timeout=1.0, prefix=unique_prefix())
    client = aioredis.Redis.from_url(url)
    try:
        assert await limiter.acquire_lease("k", "l1", 2, 10)
        await client.script_flush()  # as after a Redis restart: EVALSHA answers NOSCRIPT
        assert await limiter.acquire_lease("k", "l2", 2, 10)
        assert not await limiter.acquire_lease("k", "l3", 2, 10)
        assert (await limiter.consume("w", 1, 1, 60)).admitted
    finally:
        await limiter.close()
        await client.aclose()


async def test_fallback_admits_a_per_process_share_while_redis_is_down(caplog: pytest.LogCaptureFixture) -> None:
    with private_redis() as (url, server):
        limiter = FallbackLimiter(RedisLimiter.from_url(url, timeout=0.2, prefix="t:"), replicas=3, retry_seconds=0.2)
        try:
            assert await limiter.acquire_lease("k", "before", 9, 10)
            server.kill()
            server.wait()
            with caplog.at_level(logging.WARNING, logger="server.limits.fallback"):
                admitted = [await limiter.acquire_lease("k", f"l{n}", 9, 10) for n in range(5)]
            assert admitted == [True, True, True, False, False]  # 9 / 3 replicas
            assert limiter.degraded and limiter.fallback_decisions == 5
            assert "each process now admits 1/3" in caplog.text
            assert [(await limiter.consume("w", 1, 6, 60)).admitted for _ in range(3)] == [True, True, False]
            await limiter.release_lease("k", "l0")  # does not raise with Redis gone
        finally:
            await limiter.close()


async def test_fallback_treats_a_slow_redis_as_down() -> None:
    with private_redis() as (url, _):
        pauser = aioredis.Redis.from_url(url)
        limiter = FallbackLimiter(RedisLimiter.from_url(url, timeout=0.2, prefix="t:"), replicas=1, retry_seconds=0.2)
        try:
            assert await limiter.acquire_lease("k", "l1", 5, 10)
            await pauser.client_pause(1500, all=True)
            started = asyncio.get_running_loop().time()
            assert await limiter.acquire_lease("k", "l2", 5, 10)
            assert asyncio.get_running_loop().time() - started < 1.0
            assert limiter.degraded
        finally:
            await limiter.close()
            await pauser.aclose()
