"""Stream capacity: N concurrent streams via REST held open on a slow upstream; RSS, CPU and errors of Tollgate."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import sys
import time
from typing import Any

from bench.http1 import HttpConnection, HttpError
from bench.procs import cpu_seconds, rss_kib
from bench.settings import Settings
from bench.stack import Stack
from bench.targets import HOST, HttpTarget, SseProbe


@dataclasses.dataclass(frozen=True)
class Capacity:
    """What holding `streams` open streams cost Tollgate."""

    streams: int
    opened: int
    errors: int
    open_seconds: float
    hold_seconds: float
    rss_before_kib: int
    rss_during_kib: int
    tollgate_cpu_percent: float
    upstream_open_after_close: int

    @property
    def rss_per_stream_kib(self) -> float:
        return (self.rss_during_kib - self.rss_before_kib) / self.opened if self.opened else 0.0


class _HeldStream:
    """One stream opened and then left running until the hold ends; notes whether it ever failed."""

    def __init__(self, target: HttpTarget, raw: bytes) -> None:
        self.target = target
        self.raw = raw
        self.opened = asyncio.Event()
        self.failed = False
        self.closing = False
        self.connection: HttpConnection | None = None

    async def run(self) -> None:
        probe = SseProbe(time.perf_counter())

        def sink(piece: bytes) -> None:
            probe(piece)
            self.opened.set()

        try:
            self.connection = await HttpConnection.open(HOST, self.target.port)
            await self.connection.request(self.raw, sink)
        except (OSError, HttpError):
            pass
        finally:
            # A held stream must neither end nor break before we close it, nor carry an error event.
            self.failed = not self.closing or probe.error
            self.opened.set()

    def close(self) -> None:
        self.closing = True
        if self.connection is not None:
            self.connection.close()


async def _upstream_in_flight(stack: Stack) -> int:
    connection = await HttpConnection.open(HOST, stack.upstream_port)
    body = bytearray()
    try:
        request = f"GET /_fake/stats HTTP/1.1\r\nHost: {HOST}:{stack.upstream_port}\r\n\r\n".encode()
        await asyncio.wait_for(connection.request(request, body.extend), 10)
    finally:
        connection.close()
    in_flight: int = json.loads(body)["in_flight"]
    return in_flight - 1  # this stats request is in flight too


async def _open_all(streams: list[_HeldStream], parallelism: int, timeout: float) -> list[asyncio.Task[Any]]:
    gate = asyncio.Semaphore(parallelism)
    tasks: list[asyncio.Task[Any]] = []
    deadline = time.monotonic() + timeout
    for stream in streams:
        await gate.acquire()
        tasks.append(asyncio.create_task(stream.run()))
        waiter = asyncio.create_task(stream.opened.wait())
        waiter.add_done_callback(lambda _: gate.release())
        tasks.append(waiter)
        if time.monotonic() > deadline:
            break
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(
            asyncio.gather(*(s.opened.wait() for s in streams)), max(1.0, deadline - time.monotonic())
        )
    return tasks


async def hold(stack: Stack, settings: Settings, count: int) -> Capacity:
    """Opens `count` streams (at most `open_parallelism` opening at once), holds them, closes them."""
    target = HttpTarget(stack.http_port, stack.api_key)
    scenario = f"chunks=60, chunk_interval_ms={settings.capacity_chunk_interval_ms}"
    raw = target.request(scenario, stream=True)
    pid = stack.tollgate_pid
    rss_before = rss_kib(pid)
    streams = [_HeldStream(target, raw) for _ in range(count)]
    started = time.monotonic()
    tasks = await _open_all(streams, settings.open_parallelism, timeout=120)
    open_seconds = time.monotonic() - started
    opened = sum(1 for s in streams if s.opened.is_set() and not s.failed)
    print(
        f"  capacity {count}: {opened} open after {open_seconds:.1f} s, holding {settings.hold_seconds:.0f} s",
        file=sys.stderr,
    )
    cpu_before, hold_started, rss_samples = cpu_seconds(pid), time.monotonic(), []
    while (left := hold_started + settings.hold_seconds - time.monotonic()) > 0:
        await asyncio.sleep(min(1.0, left))
        rss_samples.append(rss_kib(pid))
    held = time.monotonic() - hold_started
    cpu_percent = (cpu_seconds(pid) - cpu_before) / held * 100
    errors = sum(1 for s in streams if s.failed or not s.opened.is_set())
    for stream in streams:
        stream.close()
    await asyncio.wait(tasks, timeout=30)
    left_open = await _settle_upstream(stack)
    await _quiet(pid)
    rss_during = sorted(rss_samples)[len(rss_samples) // 2] if rss_samples else rss_kib(pid)
    return Capacity(count, opened, errors, open_seconds, held, rss_before, rss_during, cpu_percent, left_open)


async def _settle_upstream(stack: Stack, timeout: float = 60.0) -> int:
    """Waits until the upstream saw every cancellation; returns the upstream streams still open after `timeout`."""
    deadline = time.monotonic() + timeout
    while (in_flight := await _upstream_in_flight(stack)) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    return in_flight


async def _quiet(pid: int, timeout: float = 30.0) -> None:
    """Waits (bounded) until Tollgate is nearly idle: the closed streams' settlements are written."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = cpu_seconds(pid)
        await asyncio.sleep(0.5)
        if cpu_seconds(pid) - before < 0.05:
            return
