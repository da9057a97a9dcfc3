"""Limits in process memory: the embedded default, and the fallback share when Redis is unreachable."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

from server.limits.base import WindowResult, sliding_count, window_retry_after

_SWEEP_EVERY = 1024


class MemoryLimiter:
    """Leases and sliding windows in dicts; one event loop, so every method is atomic."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._leases: dict[str, dict[str, float]] = {}
        self._windows: dict[str, dict[int, int]] = {}
        self._expires: dict[str, float] = {}
        self._operations = 0

    async def acquire_lease(self, key: str, lease_id: str, limit: int, ttl: float) -> bool:
        now = self._clock()
        leases = self._live(key, now)
        if len(leases) >= limit:
            return False
        leases[lease_id] = now + ttl
        self._leases[key] = leases
        return True

    async def renew_leases(self, leases: Mapping[str, Sequence[str]], ttl: float) -> None:
        expiry = self._clock() + ttl
        for key, lease_ids in leases.items():
            held = self._leases.get(key, {})
            for lease_id in lease_ids:
                if lease_id in held:
                    held[lease_id] = expiry

    async def release_lease(self, key: str, lease_id: str) -> None:
        held = self._leases.get(key)
        if held is not None:
            held.pop(lease_id, None)
            if not held:
                del self._leases[key]

    async def held_leases(self, key: str) -> int:
        return len(self._live(key, self._clock()))

    async def consume(self, key: str, amount: int, limit: int, window: float) -> WindowResult:
        now = self._clock()
        self._sweep(now)
        whole, elapsed = divmod(now, window)
        bucket = int(whole)
        counts = self._windows.setdefault(key, {})
        previous, current = counts.get(bucket - 1, 0), counts.get(bucket, 0)
        if sliding_count(previous, current, elapsed, window) + amount > limit:
            return WindowResult(False, window_retry_after(previous, current, elapsed, window, amount, limit), bucket)
        counts[bucket] = current + amount
        for old in [b for b in counts if b < bucket - 1]:
            del counts[old]
        self._expires[key] = now + 2 * window
        return WindowResult(True, 0.0, bucket)

    async def correct(self, key: str, bucket: int, delta: int, window: float) -> None:
        counts = self._windows.get(key)
        if counts is not None and bucket in counts:
            counts[bucket] = max(0, counts[bucket] + delta)

    async def close(self) -> None:
        self._leases.clear()
        self._windows.clear()
        self._expires.clear()

    def _live(self, key: str, now: float) -> dict[str, float]:
        held = self._leases.get(key, {})
        expired = [lease_id for lease_id, expiry in held.items() if expiry <= now]
        for lease_id in expired:
            del held[lease_id]
        return held

    def _sweep(self, now: float) -> None:
        """Now and then, forgets windows nobody counted in for two windows (keeps memory bounded)."""
        self._operations += 1
        if self._operations % _SWEEP_EVERY:
            return
        for key in [key for key, expires in self._expires.items() if expires <= now]:
            del self._expires[key]
            self._windows.pop(key, None)
