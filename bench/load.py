"""Closed-loop load: N workers each repeat one call until a deadline or a request count, timing every call."""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
import time
from collections.abc import Sequence
from typing import Protocol

from bench.procs import CpuClock


class Call(Protocol):
    """One request, raising on any failure; each worker owns one (and with it, e.g., its keep-alive connection)."""

    async def __call__(self) -> None: ...

    def close(self) -> None: ...


@dataclasses.dataclass(frozen=True)
class Sample:
    """What one run of one target at one concurrency measured."""

    requests: int
    errors: int
    seconds: float
    latencies_ms: tuple[float, ...]
    cpu_ms: dict[str, float]
    """CPU milliseconds spent during the run, per process name (tollgate, upstream, generator)."""

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        return percentile(self.latencies_ms, p)

    def cpu_per_request(self, process: str) -> float:
        return self.cpu_ms.get(process, 0.0) / self.requests if self.requests else 0.0


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


async def closed_loop(
    calls: Sequence[Call], *, duration: float, max_requests: int, clock: CpuClock, grace: float = 30.0
) -> Sample:
    """Runs every call in its own worker until `duration` seconds or `max_requests` in total; bounded by `grace`."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration

    async def worker(call: Call) -> None:
        nonlocal errors
        perf = time.perf_counter
        while len(latencies) + errors < max_requests:
            started = perf()
            if started >= deadline:
                return
            try:
                await call()
            except Exception:
                errors += 1
                await asyncio.sleep(0.01)  # a broken target must not turn the loop into a spin
                continue
            latencies.append((perf() - started) * 1000)

    before = clock.read()
    started = time.perf_counter()
    tasks = [asyncio.create_task(worker(call)) for call in calls]
    _, pending = await asyncio.wait(tasks, timeout=duration + grace)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    elapsed = time.perf_counter() - started
    spent = clock.since(before)
    return Sample(len(latencies), errors + len(pending), elapsed, tuple(latencies), spent)
