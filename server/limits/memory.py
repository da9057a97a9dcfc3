"""Limits in process memory: the embedded default, and the fallback share when Redis is unreachable."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

from server.limits.base import (
    Correction,
    FailureAsk,
    LeaseAsk,
    Taken,
    WindowAsk,
    WindowResult,
    sliding_count,
    undoing,
    window_retry_after,
)

_SWEEP_EVERY = 1024


class MemoryLimiter:
    """Leases, sliding windows and failures in dicts; one event loop, so every method is atomic."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._leases: dict[str, dict[str, float]] = {}
        self._windows: dict[str, dict[int, int]] = {}
        self._failures: dict[str, list[float]] = {}
        self._expires: dict[str, float] = {}
        self._operations = 0

    async def take(self, lease: LeaseAsk | None, windows: Sequence[WindowAsk]) -> Taken:
        now = self._clock()
        if lease is not None and not self._acquire(lease, now):
            return Taken(False, ())
        results: list[WindowResult] = []
        for ask in windows:
            results.append(self._consume(ask, now))
            if not results[-1].admitted:
                taken = Taken(True, results)
                self._give_back(*undoing(lease, taken, windows))
                return taken
        return Taken(True, results)

    async def give_back(self, lease: tuple[str, str] | None, corrections: Sequence[Correction]) -> None:
        self._give_back(lease, corrections)

    async def renew_leases(self, leases: Mapping[str, Sequence[str]], ttl: float) -> None:
        expiry = self._clock() + ttl
        for key, lease_ids in leases.items():
            held = self._leases.get(key, {})
            for lease_id in lease_ids:
                if lease_id in held:
                    held[lease_id] = expiry

    async def held_leases(self, key: str) -> int:
        return len(self._live(key, self._clock()))

    async def record_failure(self, asks: Sequence[FailureAsk]) -> None:
        now = self._clock()
        self._sweep(now)
        for ask in asks:
            times = self._failures.setdefault(ask.key, [])
            times.append(now)
            del times[: -ask.limit]
            self._expires[ask.key] = now + ask.window

    async def failure_wait(self, asks: Sequence[FailureAsk]) -> float:
        now = self._clock()
        return max((self._failure_wait(ask, now) for ask in asks), default=0.0)

    async def forget_failures(self, key: str) -> None:
        self._failures.pop(key, None)

    async def close(self) -> None:
        self._leases.clear()
        self._windows.clear()
        self._failures.clear()
        self._expires.clear()

    def _acquire(self, lease: LeaseAsk, now: float) -> bool:
        leases = self._live(lease.key, now)
        if len(leases) >= lease.limit:
            return False
        leases[lease.lease_id] = now + lease.ttl
        self._leases[lease.key] = leases
        return True

    def _consume(self, ask: WindowAsk, now: float) -> WindowResult:
        self._sweep(now)
        window = ask.window
        whole, elapsed = divmod(now, window)
        bucket = int(whole)
        counts = self._windows.setdefault(ask.key, {})
        previous, current = counts.get(bucket - 1, 0), counts.get(bucket, 0)
        if sliding_count(previous, current, elapsed, window) + ask.amount > ask.limit:
            retry = window_retry_after(previous, current, elapsed, window, ask.amount, ask.limit)
            return WindowResult(False, retry, bucket)
        counts[bucket] = current + ask.amount
        for old in [b for b in counts if b < bucket - 1]:
            del counts[old]
        self._expires[ask.key] = now + 2 * window
        return WindowResult(True, 0.0, bucket)

    def _give_back(self, lease: tuple[str, str] | None, corrections: Sequence[Correction]) -> None:
        if lease is not None:
            key, lease_id = lease
            held = self._leases.get(key)
            if held is not None:
                held.pop(lease_id, None)
                if not held:
                    del self._leases[key]
        for correction in corrections:
            counts = self._windows.get(correction.key)
            if counts is not None and correction.bucket in counts:
                counts[correction.bucket] = max(0, counts[correction.bucket] + correction.delta)

    def _failure_wait(self, ask: FailureAsk, now: float) -> float:
        times = self._failures.get(ask.key, [])
        if len(times) < ask.limit:
            return 0.0
        return max(0.0, times[-ask.limit] + ask.window - now)

    def _live(self, key: str, now: float) -> dict[str, float]:
        held = self._leases.get(key, {})
        expired = [lease_id for lease_id, expiry in held.items() if expiry <= now]
        for lease_id in expired:
            del held[lease_id]
        return held

    def _sweep(self, now: float) -> None:
        """Now and then, forgets windows nobody counted in for two windows, and failures past their window."""
        self._operations += 1
        if self._operations % _SWEEP_EVERY:
            return
        for key in [key for key, expires in self._expires.items() if expires <= now]:
            del self._expires[key]
            self._windows.pop(key, None)
            self._failures.pop(key, None)
