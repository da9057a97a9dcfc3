"""A channel's adaptive capacity: AIMD allowance and a bounded queue that takes accounts in turn."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from server.domain.capacity import ChannelCapacity
from server.errors import OverloadedError
from tests.support.relay_env import relay_env


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_allowance_halves_on_pushback_once_per_cooldown_and_grows_back_additively() -> None:
    clock = Clock()
    capacity = ChannelCapacity("c", 16, queue_seconds=0.1, queue_size=4, clock=clock)
    capacity.overloaded()
    capacity.overloaded()  # the same burst of 429s: one decrease
    assert capacity.allowed == 8
    clock.now += 1.5
    for _ in range(3):
        capacity.overloaded()
        clock.now += 1.5
    assert capacity.allowed == 1  # never below one
    for _ in range(1 + 2 + 3):  # about one step per allowance's worth of successes
        capacity.succeeded()
    assert capacity.allowed == 3
    for _ in range(1000):
        capacity.succeeded()
    assert capacity.allowed == 16  # never above the configured maximum


async def test_over_the_allowance_a_call_waits_then_is_refused_with_a_retry_hint() -> None:
    capacity = ChannelCapacity("c", 1, queue_seconds=0.1, queue_size=1)
    await capacity.acquire("a")
    with pytest.raises(OverloadedError) as waited:
        await capacity.acquire("a")
    assert waited.value.retry_after == 1.0
    waiting = asyncio.ensure_future(capacity.acquire("a"))
    await asyncio.sleep(0)
    with pytest.raises(OverloadedError):  # the queue is full: refused at once
        await capacity.acquire("b")
    capacity.release()  # handed to the waiter, which now counts as in flight
    await waiting
    assert capacity.in_flight == 1


async def test_the_queue_takes_accounts_in_turn() -> None:
    capacity = ChannelCapacity("c", 1, queue_seconds=5, queue_size=100)
    await capacity.acquire("heavy")
    served: list[str] = []

    async def call(account: str) -> None:
        await capacity.acquire(account)
        served.append(account)

    tasks = [asyncio.ensure_future(call("heavy")) for _ in range(5)]
    await asyncio.sleep(0)
    tasks.append(asyncio.ensure_future(call("light")))
    await asyncio.sleep(0)
    for _ in range(6):
        capacity.release()
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    assert served.index("light") == 1  # not sixth behind every heavy call


async def test_a_cancelled_waiter_leaves_the_queue_and_a_place_it_just_got_goes_on() -> None:
    capacity = ChannelCapacity("c", 1, queue_seconds=5, queue_size=10)
    await capacity.acquire("a")
    first = asyncio.ensure_future(capacity.acquire("a"))
    second = asyncio.ensure_future(capacity.acquire("b"))
    await asyncio.sleep(0)
    capacity.release()  # the place goes to `first`…
    first.cancel()  # …which is cancelled before it runs: the place must reach `second`
    await asyncio.gather(first, return_exceptions=True)
    await asyncio.wait_for(second, timeout=1)
    assert capacity.in_flight == 1


async def test_a_busy_channel_answers_503_overloaded_with_retry_after(tmp_path: Path) -> None:
    environ = {"TOLLGATE_LIMITS_CHANNEL_MAX_CONCURRENCY": "2", "TOLLGATE_LIMITS_CHANNEL_QUEUE_SECONDS": "0.3"}
    async with relay_env(tmp_path, environ=environ) as env:
        slow = [{"role": "user", "content": "[[scenario: first_byte_ms=1500]] busy"}]
        async with env.client() as client:

            async def one() -> tuple[int, str | None]:
                try:
                    await client.chat.completions.create(model="deepseek-chat", messages=slow)  # type: ignore[arg-type]
                except Exception as exc:
                    response = exc.response  # type: ignore[attr-defined]
                    return response.status_code, response.headers.get("retry-after")
                return 200, None

            outcomes = await asyncio.gather(*(one() for _ in range(4)))
        assert sorted(outcomes) == [(200, None), (200, None), (503, "1"), (503, "1")]
