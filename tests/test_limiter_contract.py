"""One contract, three limiters: process memory, Redis, and Redis behind the outage fallback."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from server.limits.base import (
    Correction,
    FailureAsk,
    LeaseAsk,
    Limiter,
    WindowAsk,
    WindowResult,
    sliding_count,
    window_retry_after,
)
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


def _lease(lease_id: str, limit: int, ttl: float = 10, key: str = "k") -> LeaseAsk:
    return LeaseAsk(key, lease_id, limit, ttl)


async def _lease_taken(limiter: Limiter, lease_id: str, limit: int, ttl: float = 10, key: str = "k") -> bool:
    return (await limiter.take(_lease(lease_id, limit, ttl, key), [])).lease


async def _counted(limiter: Limiter, key: str, amount: int, limit: int) -> WindowResult:
    [result] = (await limiter.take(None, [WindowAsk(key, amount, limit, 60)])).windows
    return result


async def test_leases_up_to_the_limit_then_refused_until_one_is_released(limiter: Limiter) -> None:
    assert [await _lease_taken(limiter, f"l{n}", 3) for n in range(4)] == [True, True, True, False]
    assert await limiter.held_leases("k") == 3
    await limiter.give_back(("k", "l1"), [])
    assert await _lease_taken(limiter, "l9", 3)
    assert await limiter.held_leases("other") == 0


async def test_a_lease_not_renewed_expires_and_a_renewed_one_does_not(limiter: Limiter) -> None:
    assert await _lease_taken(limiter, "kept", 2, ttl=0.3)
    assert await _lease_taken(limiter, "lost", 2, ttl=0.3)
    for _ in range(3):
        await asyncio.sleep(0.15)
        await limiter.renew_leases({"k": ["kept"]}, 0.3)
    assert await limiter.held_leases("k") == 1
    await limiter.renew_leases({"k": ["lost"]}, 10)  # an expired lease is not brought back
    assert await limiter.held_leases("k") == 1


async def test_window_admits_up_to_the_limit_and_says_when_to_come_back(limiter: Limiter) -> None:
    results = [await _counted(limiter, "w", 1, 3) for _ in range(4)]
    assert [result.admitted for result in results] == [True, True, True, False]
    assert 0 < results[-1].retry_after <= 120
    assert len({result.bucket for result in results}) == 1


async def test_correction_gives_back_what_a_request_did_not_use(limiter: Limiter) -> None:
    first = await _counted(limiter, "t", 900, 1000)
    assert first.admitted
    assert not (await _counted(limiter, "t", 900, 1000)).admitted
    await limiter.give_back(None, [Correction("t", first.bucket, -850, 60)])
    assert (await _counted(limiter, "t", 900, 1000)).admitted
    await limiter.give_back(None, [Correction("t", first.bucket, -(10**6), 60)])  # a refund never becomes credit
    assert (await _counted(limiter, "t", 1000, 1000)).admitted
    assert not (await _counted(limiter, "t", 1, 1000)).admitted


async def test_a_refusal_keeps_nothing_of_what_it_asked(limiter: Limiter) -> None:
    assert (await _counted(limiter, "full", 1, 1)).admitted
    asked = [WindowAsk("rpm", 1, 5, 60), WindowAsk("tpm", 400, 500, 60), WindowAsk("full", 1, 1, 60)]
    taken = await limiter.take(_lease("l1", 5), asked)
    assert taken.lease and not taken.admitted
    assert [result.admitted for result in taken.windows][:3] == [True, True, False]
    assert taken.windows[2].retry_after > 0
    assert await limiter.held_leases("k") == 0
    assert (await _counted(limiter, "tpm", 500, 500)).admitted  # the refused request's 400 were given back
    assert await _lease_taken(limiter, "only", 1, key="one")
    refused = await limiter.take(_lease("second", 1, key="one"), [WindowAsk("rpm", 5, 5, 60)])
    assert not refused.lease and not refused.admitted
    assert (await _counted(limiter, "rpm", 5, 5)).admitted  # nothing was counted for the refused lease


async def test_a_refusal_by_the_account_or_the_token_gives_back_what_the_other_took(limiter: Limiter) -> None:
    """As admission asks: the token's keys and the account's keys under their own hash tags."""
    lease = LeaseAsk("{tok:a}:leases", "l1", 5, 10)
    assert (await _counted(limiter, "{acc:b}:rpm", 1, 1)).admitted  # the account's minute is full
    taken = await limiter.take(lease, [WindowAsk("{tok:a}:rpm", 1, 1, 60), WindowAsk("{acc:b}:rpm", 1, 1, 60)])
    assert taken.lease and [result.admitted for result in taken.windows] == [True, False]
    assert await limiter.held_leases("{tok:a}:leases") == 0
    assert (await _counted(limiter, "{tok:a}:rpm", 1, 1)).admitted  # the token's count was given back: now full
    taken = await limiter.take(lease, [WindowAsk("{tok:a}:rpm", 1, 1, 60), WindowAsk("{acc:c}:tpm", 10, 10, 60)])
    assert taken.lease and [result.admitted for result in taken.windows][:1] == [False]
    assert await limiter.held_leases("{tok:a}:leases") == 0
    assert (await _counted(limiter, "{acc:c}:tpm", 10, 10)).admitted  # the account's count was given back


async def test_failures_close_a_key_at_the_limit_until_the_oldest_leaves_the_window(limiter: Limiter) -> None:
    name, address = FailureAsk("name", 3, 0.6), FailureAsk("ip", 5, 0.6)
    for _ in range(2):
        await limiter.record_failure([name, address])
    assert await limiter.failure_wait([name, address]) == 0
    await limiter.record_failure([name])
    wait = await limiter.failure_wait([name, address])
    assert 0.3 < wait <= 0.6
    assert await limiter.failure_wait([address]) == 0  # two of five
    assert await limiter.failure_wait([FailureAsk("other", 3, 0.6)]) == 0
    await asyncio.sleep(wait + 0.05)
    assert await limiter.failure_wait([name]) == 0


async def test_failures_keep_only_the_latest_so_a_new_one_closes_the_key_for_a_whole_window(limiter: Limiter) -> None:
    ask = FailureAsk("f", 2, 0.6)
    await limiter.record_failure([ask])
    await asyncio.sleep(0.3)
    await limiter.record_failure([ask])
    await limiter.record_failure([ask])
    assert await limiter.failure_wait([ask]) > 0.45  # from the second failure, not the first


async def test_forgotten_failures_open_the_key_and_no_other(limiter: Limiter) -> None:
    name, address = FailureAsk("name", 2, 60), FailureAsk("ip", 2, 60)
    for _ in range(2):
        await limiter.record_failure([name, address])
    await limiter.forget_failures("name")
    assert await limiter.failure_wait([name]) == 0
    assert 59 < await limiter.failure_wait([name, address]) <= 60


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
        await limiter.take(LeaseAsk("{tok:a}:leases", "l1", 5, 10), [WindowAsk("{tok:a}:rpm", 1, 5, 60)])
        await limiter.record_failure([FailureAsk("login:x", 5, 300)])
        keys = [key async for key in client.scan_iter(match=prefix + "*")]
        expected = ["login:x", "{tok:a}:leases", "{tok:a}:rpm"]
        assert sorted(keys) == [f"{prefix}{key}".encode() for key in expected]
        assert [await client.pttl(key) > 0 for key in keys] == [True, True, True]
    finally:
        await limiter.close()
        await client.aclose()


class _CountingConnection(aioredis.Connection):
    """Counts what it sends: one send per round trip (a pipeline's commands go out together)."""

    sends = 0

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        type(self).sends += 1
        await super().send_packed_command(command, check_health)


async def test_redis_takes_a_lease_and_four_windows_in_one_round_trip_and_gives_them_back_in_one() -> None:
    pool = aioredis.ConnectionPool.from_url(shared_redis_url(), connection_class=_CountingConnection)
    limiter = RedisLimiter(aioredis.Redis.from_pool(pool), prefix=unique_prefix())
    asked = [WindowAsk(f"w{n}", 1, 10, 60) for n in range(4)]
    try:
        await limiter.take(_lease("warm", 10), asked)  # connects, and loads the scripts if Redis lacks them
        _CountingConnection.sends = 0
        taken = await limiter.take(_lease("l1", 10), asked)
        assert taken.admitted and _CountingConnection.sends == 1
        await limiter.give_back(("k", "l1"), [Correction(f"w{n}", taken.windows[n].bucket, -1, 60) for n in range(4)])
        assert _CountingConnection.sends == 2
        assert await limiter.held_leases("k") == 1
    finally:
        await limiter.close()


class _SlowReplies(aioredis.Connection):
    """Hands each reply on `delay` seconds after reading it: the command has run while its caller still waits."""

    delay = 0.0

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        reply = await super().read_response(*args, **kwargs)
        await asyncio.sleep(type(self).delay)
        return reply


async def test_redis_admission_abandoned_while_its_reply_is_on_the_way_is_given_back() -> None:
    pool = aioredis.ConnectionPool.from_url(shared_redis_url(), connection_class=_SlowReplies)
    limiter = RedisLimiter(aioredis.Redis.from_pool(pool), prefix=unique_prefix())
    try:
        assert await _lease_taken(limiter, "warm", 5)  # connects, and loads the script if Redis lacks it
        await limiter.give_back(("k", "warm"), [])
        _SlowReplies.delay = 0.3
        taking = asyncio.create_task(limiter.take(_lease("l1", 5), []))
        await asyncio.sleep(0.1)  # Redis has taken the slot; the caller gives up before it hears so
        taking.cancel()
        with pytest.raises(asyncio.CancelledError):
            await taking
        _SlowReplies.delay = 0.0
        for _ in range(100):
            if not await limiter.held_leases("k"):
                break
            await asyncio.sleep(0.02)
        assert await limiter.held_leases("k") == 0
    finally:
        _SlowReplies.delay = 0.0
        await limiter.close()


async def test_redis_scripts_are_reloaded_after_script_flush() -> None:
    url = shared_redis_url()
    limiter = RedisLimiter.from_url(url, timeout=1.0, prefix=unique_prefix())
    client = aioredis.Redis.from_url(url)
    try:
        assert await _lease_taken(limiter, "l1", 3)
        await client.script_flush()  # as after a Redis restart: EVALSHA answers NOSCRIPT
        assert await _lease_taken(limiter, "l2", 3)
        await client.script_flush()
        assert (await limiter.take(_lease("l3", 3), [WindowAsk("w", 1, 1, 60)])).admitted  # the pipelined path
        assert not await _lease_taken(limiter, "l4", 3)
        assert not (await _counted(limiter, "w", 1, 1)).admitted
    finally:
        await limiter.close()
        await client.aclose()


async def test_fallback_admits_a_per_process_share_while_redis_is_down(caplog: pytest.LogCaptureFixture) -> None:
    with private_redis() as (url, server):
        limiter = FallbackLimiter(RedisLimiter.from_url(url, timeout=0.2, prefix="t:"), replicas=3, retry_seconds=0.2)
        try:
            assert await _lease_taken(limiter, "before", 9)
            server.kill()
            server.wait()
            with caplog.at_level(logging.WARNING, logger="server.limits.fallback"):
                admitted = [await _lease_taken(limiter, f"l{n}", 9) for n in range(5)]
            assert admitted == [True, True, True, False, False]  # 9 / 3 replicas
            assert limiter.degraded and limiter.fallback_decisions == 5
            assert "each process now admits 1/3" in caplog.text
            assert [(await _counted(limiter, "w", 1, 6)).admitted for _ in range(3)] == [True, True, False]
            await limiter.give_back(("k", "l0"), [])  # does not raise with Redis gone
            failures = FailureAsk("f", 6, 60)
            for _ in range(2):
                await limiter.record_failure([failures])
            assert await limiter.failure_wait([failures]) > 0  # 6 / 3 replicas
            await limiter.forget_failures("f")
            assert await limiter.failure_wait([failures]) == 0
        finally:
            await limiter.close()


async def test_fallback_treats_a_slow_redis_as_down() -> None:
    with private_redis() as (url, _):
        pauser = aioredis.Redis.from_url(url)
        limiter = FallbackLimiter(RedisLimiter.from_url(url, timeout=0.2, prefix="t:"), replicas=1, retry_seconds=0.2)
        try:
            assert await _lease_taken(limiter, "l1", 5)
            await pauser.client_pause(1500, all=True)
            started = asyncio.get_running_loop().time()
            assert await _lease_taken(limiter, "l2", 5)
            assert asyncio.get_running_loop().time() - started < 1.0
            assert limiter.degraded
        finally:
            await limiter.close()
            await pauser.aclose()
