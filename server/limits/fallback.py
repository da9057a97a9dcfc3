"""Shared limits that keep working when their store does not: a bounded per-process share instead.

While Redis answers within `timeout`, it decides. When it fails or is slow, this process decides
alone for `retry_seconds`, admitting at most `limit / replicas` per key (rounded up): across all
replicas that is never more than the limit, and requests keep flowing. A log line marks the start
and the end of each outage, and `fallback_decisions` counts the decisions taken locally. Money never
depends on this: holds and settlements live in the database.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

from redis.exceptions import RedisError

from server.limits.base import Limiter, WindowResult
from server.limits.memory import MemoryLimiter

log = logging.getLogger(__name__)
_T = TypeVar("_T")


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

    async def acquire_lease(self, key: str, lease_id: str, limit: int, ttl: float) -> bool:
        admitted = await self._primary_or_none(lambda: self._primary.acquire_lease(key, lease_id, limit, ttl))
        if admitted is not None:
            return admitted
        self.fallback_decisions += 1
        return await self._local.acquire_lease(key, lease_id, self._share(limit), ttl)

    async def renew_leases(self, leases: Mapping[str, Sequence[str]], ttl: float) -> None:
        await self._local.renew_leases(leases, ttl)
        await self._primary_or_none(lambda: self._primary.renew_leases(leases, ttl))

    async def release_lease(self, key: str, lease_id: str) -> None:
        """Released from both: a lease taken during an outage lives here, one taken before it in Redis."""
        await self._local.release_lease(key, lease_id)
        await self._primary_or_none(lambda: self._primary.release_lease(key, lease_id))

    async def held_leases(self, key: str) -> int:
        held = await self._primary_or_none(lambda: self._primary.held_leases(key))
        return await self._local.held_leases(key) + (held or 0)

    async def consume(self, key: str, amount: int, limit: int, window: float) -> WindowResult:
        result = await self._primary_or_none(lambda: self._primary.consume(key, amount, limit, window))
        if result is not None:
            return result
        self.fallback_decisions += 1
        return await self._local.consume(key, amount, self._share(limit), window)

    async def correct(self, key: str, bucket: int, delta: int, window: float) -> None:
        await self._local.correct(key, bucket, delta, window)
        await self._primary_or_none(lambda: self._primary.correct(key, bucket, delta, window))

    async def close(self) -> None:
        await self._local.close()
        await self._primary.close()

    def _share(self, limit: int) -> int:
        return max(1, math.ceil(limit / self._replicas))

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
