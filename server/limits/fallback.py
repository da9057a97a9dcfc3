"""Shared limits that keep working when their store does not: a bounded per-process share instead.

While Redis answers within `timeout`, it decides. When it fails or is slow, this process decides
alone for `retry_seconds`, admitting at most `limit / replicas` per key (rounded up): across all
replicas that is never more than the limit, and requests keep flowing. A log line marks the start
and the end of each outage, and `fallback_decisions` counts the decisions taken locally. Money never
depends on this: holds and settlements live in the database.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

from redis.exceptions import RedisError

from server.limits.base import Correction, FailureAsk, LeaseAsk, Limiter, Taken, WindowAsk
from server.limits.memory import MemoryLimiter

log = logging.getLogger(__name__)
_T = TypeVar("_T")
_Ask = TypeVar("_Ask", LeaseAsk, WindowAsk, FailureAsk)


class FallbackLimiter:
    """`primary` while it is healthy; a MemoryLimiter share of each limit while it is not."""

    def __init__(
        self,
        primary: Limiter,
        *,
        replicas: int,
        timeout: float = 0.2,
        retry_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._primary = primary
        self._local = MemoryLimiter(clock)
        self._replicas = max(1, replicas)
        self._timeout = timeout
        self._retry_seconds = retry_seconds
        self._clock = clock
        self._down_until: float | None = None
        self.fallback_decisions = 0

    @property
    def degraded(self) -> bool:
        return self._down_until is not None

    async def take(self, lease: LeaseAsk | None, windows: Sequence[WindowAsk]) -> Taken:
        taken = await self._primary_or_none(lambda: self._primary.take(lease, windows))
        if taken is not None:
            return taken
        self.fallback_decisions += 1
        shared_lease = self._shared([lease])[0] if lease is not None else None
        return await self._local.take(shared_lease, self._shared(windows))

    async def give_back(self, lease: tuple[str, str] | None, corrections: Sequence[Correction]) -> None:
        """Given back to both: a lease taken during an outage lives here, one taken before it in Redis."""
        await self._local.give_back(lease, corrections)
        await self._primary_or_none(lambda: self._primary.give_back(lease, corrections))

    async def renew_leases(self, leases: Mapping[str, Sequence[str]], ttl: float) -> None:
        await self._local.renew_leases(leases, ttl)
        await self._primary_or_none(lambda: self._primary.renew_leases(leases, ttl))

    async def held_leases(self, key: str) -> int:
        held = await self._primary_or_none(lambda: self._primary.held_leases(key))
        return await self._local.held_leases(key) + (held or 0)

    async def record_failure(self, asks: Sequence[FailureAsk]) -> None:
        """Noted here too (at this process's share), so an outage starts from what this process saw."""
        await self._local.record_failure(self._shared(asks))
        await self._primary_or_none(lambda: self._primary.record_failure(asks))

    async def failure_wait(self, asks: Sequence[FailureAsk]) -> float:
        wait = await self._primary_or_none(lambda: self._primary.failure_wait(asks))
        if wait is not None:
            return wait
        self.fallback_decisions += 1
        return await self._local.failure_wait(self._shared(asks))

    async def forget_failures(self, key: str) -> None:
        await self._local.forget_failures(key)
        await self._primary_or_none(lambda: self._primary.forget_failures(key))

    async def close(self) -> None:
        await self._local.close()
        await self._primary.close()

    def _shared(self, asks: Sequence[_Ask]) -> list[_Ask]:
        """The asks with this process's share of each limit (rounded up)."""
        return [dataclasses.replace(ask, limit=max(1, math.ceil(ask.limit / self._replicas))) for ask in asks]

    async def _primary_or_none(self, operation: Callable[[], Awaitable[_T]]) -> _T | None:
        """The primary's answer, or None when it is down (then skipped until the retry time)."""
        if self._down_until is not None and self._clock() < self._down_until:
            return None
        try:
            async with asyncio.timeout(self._timeout):
                answer = await operation()
        except (TimeoutError, OSError, RedisError) as exc:
            self._mark_down(exc)
            return None
        if self._down_until is not None:
            log.warning("limits: shared store is back; shared limits apply again")
            self._down_until = None
        return answer

    def _mark_down(self, exc: BaseException) -> None:
        if self._down_until is None:
            log.warning(
                "limits: shared store unreachable or slow (%s); each process now admits 1/%d of each limit",
                type(exc).__name__,
                self._replicas,
            )
        self._down_until = self._clock() + self._retry_seconds
