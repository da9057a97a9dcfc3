"""The small Protocol every limits backend implements, and the sliding-window arithmetic they share.

Concurrency slots are leases: a member with an expiry in a per-key set, renewed while its request
runs and removed when it ends, so a process that dies leaves nothing behind for longer than one
lease. Rates are two-bucket sliding windows: the previous bucket's count weighted by how much of it
still overlaps the window, plus the current bucket's count. A request's lease and windows are taken
together, in one call (one round trip to Redis), and given back together. Failures (failed logins)
are an exact rolling log: the times of the latest `limit` under a key; while all of them lie inside
the window, the key is closed until the oldest leaves it.
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


@dataclasses.dataclass(frozen=True)
class LeaseAsk:
    """One concurrency slot asked of the lease set under `key`, held at most `limit` at a time."""

    key: str
    lease_id: str
    limit: int
    ttl: float


@dataclasses.dataclass(frozen=True)
class WindowAsk:
    """`amount` asked of the sliding window under `key`, which counts at most `limit` per `window` seconds."""

    key: str
    amount: int
    limit: int
    window: float


@dataclasses.dataclass(frozen=True)
class Taken:
    """What `Limiter.take` said: whether the lease was granted, and each window's result."""

    lease: bool
    """True also when no lease was asked."""
    windows: Sequence[WindowResult]
    """In the order asked, up to the first refusal at least (after a refused lease, maybe none)."""

    @property
    def admitted(self) -> bool:
        return self.lease and all(result.admitted for result in self.windows)


@dataclasses.dataclass(frozen=True)
class Correction:
    """`delta` (maybe negative, never taking a count below zero) for a bucket of the window under `key`."""

    key: str
    bucket: int
    delta: int
    window: float


@dataclasses.dataclass(frozen=True)
class FailureAsk:
    """The failures under `key`: after `limit` of them within `window` seconds, the key is closed."""

    key: str
    limit: int
    window: float


class Limiter(Protocol):
    """Leases and windows keyed by strings; every key expires on its own when nobody uses it."""

    async def take(self, lease: LeaseAsk | None, windows: Sequence[WindowAsk]) -> Taken:
        """The lease and every window's amount, all or nothing: after any refusal, nothing stays taken."""
        ...

    async def give_back(self, lease: tuple[str, str] | None, corrections: Sequence[Correction]) -> None:
        """Releases the lease (key, lease id) and applies the corrections to buckets still inside their window."""
        ...

    async def renew_leases(self, leases: Mapping[str, Sequence[str]], ttl: float) -> None:
        """Pushes the expiry of live leases (key → lease ids) `ttl` seconds ahead; unknown ones stay gone."""
        ...

    async def held_leases(self, key: str) -> int:
        """The unexpired leases under `key`."""
        ...

    async def record_failure(self, asks: Sequence[FailureAsk]) -> None:
        """Notes one failure now under each key (only the latest `limit` are kept)."""
        ...

    async def failure_wait(self, asks: Sequence[FailureAsk]) -> float:
        """Seconds until every key is open again: 0 while each has had fewer than `limit` failures in its window."""
        ...

    async def forget_failures(self, key: str) -> None:
        """Forgets the failures under `key`."""
        ...

    async def close(self) -> None: ...


def undoing(
    lease: LeaseAsk | None, taken: Taken, windows: Sequence[WindowAsk]
) -> tuple[tuple[str, str] | None, list[Correction]]:
    """What `give_back` needs to undo the part of a refused `take` that was granted."""
    granted = (lease.key, lease.lease_id) if lease is not None and taken.lease else None
    return granted, [
        Correction(ask.key, result.bucket, -ask.amount, ask.window)
        for ask, result in zip(windows, taken.windows, strict=False)
        if result.admitted
    ]


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
