"""The small Protocol every limits backend implements, and the sliding-window arithmetic they share.

Concurrency slots are leases: a member with an expiry in a per-key set, renewed while its request
runs and removed when it ends, so a process that dies leaves nothing behind for longer than one
lease. Rates are two-bucket sliding windows: the previous bucket's count weighted by how much of it
still overlaps the window, plus the current bucket's count.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Protocol


@dataclasses.dataclass(frozen=True)
class WindowResult:
    """What a sliding window said about one request."""

    admitted: bool
    retry_after: float
    """Seconds until the request would fit (0 when admitted)."""
    bucket: int
    """The bucket the amount was counted in; a later correction goes to the same one."""


class Limiter(Protocol):
    """Leases and windows keyed by strings; every key expires on its own when nobody uses it."""

    async def acquire_lease(self, key: str, lease_id: str, limit: int, ttl: float) -> bool:
        """Adds the lease if fewer than `limit` unexpired leases are held under `key`."""
        ...

    async def renew_leases(self, leases: Mapping[str, Sequence[str]], ttl: float) -> None:
        """Pushes the expiry of live leases (key → lease ids) `ttl` seconds ahead; unknown ones stay gone."""
        ...

    async def release_lease(self, key: str, lease_id: str) -> None: ...

    async def held_leases(self, key: str) -> int:
        """The unexpired leases under `key`."""
        ...

    async def consume(self, key: str, amount: int, limit: int, window: float) -> WindowResult:
        """Counts `amount` in the window if it fits under `limit`; counts nothing otherwise."""
        ...

    async def correct(self, key: str, bucket: int, delta: int, window: float) -> None:
        """Adds `delta` (maybe negative, never below zero) to a bucket still inside the window."""
        ...

    async def close(self) -> None: ...


def sliding_count(previous: int, current: int, elapsed: float, window: float) -> float:
    """The window's count `elapsed` seconds into the current bucket."""
    return previous * (window - elapsed) / window + current


def window_retry_after(previous: int, current: int, elapsed: float, window: float, amount: int, limit: int) -> float:
    """Seconds until `amount` more fits under `limit`, if nothing else is counted meanwhile."""
    room = limit - amount - current
    if room >= 0 and previous > 0:
        # Still in this bucket: the previous bucket's weight falls until the amount fits.
        return max(0.0, window * (1 - room / previous) - elapsed)
    until_next = window - elapsed
    room = limit - amount
    if current <= 0 or room >= current:
        return until_next
    # In the next bucket, today's count becomes the weighted previous one.
    return until_next + window * (1 - max(room, 0) / current)
