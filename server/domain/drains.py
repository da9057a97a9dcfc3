"""Upstream streams read on after their client left, so the call is charged from the upstream's final usage.

A stream's upstream is read by a pump task of its own, so a client that leaves cancels only its
consumer. The pump is then adopted as a drain: it keeps reading (the meter sees every chunk and the
final usage) until the upstream ends, for at most `disconnect_drain_seconds`, and at most
`max_disconnect_drains` run at once. Past either bound the upstream request is cancelled, and the call
is settled from the prompt and the tokens actually received, flagged estimated.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator

from tollgate.v1 import relay_pb2

from server.domain.metering import UsageMeter

_Chunk = relay_pb2.StreamChatCompletionResponse
_END = object()
READ_AHEAD = 16
"""Chunks read from the upstream before the client took them: the back-pressure bound."""
FIRST_CHUNKS = 2
"""Chunks after each of which the pump lets the consumer run before it reads on. An upstream often sends a burst
(the role chunk, the first tokens) in one segment: read ahead at once, the first token would wait behind the burst."""


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class Pump:
    """Reads an upstream stream in its own task, showing each chunk to the meter, handing them on by a queue."""

    def __init__(self, upstream: AsyncIterator[_Chunk], meter: UsageMeter) -> None:
        self._upstream = upstream
        self._meter = meter
        self._queue: asyncio.Queue[object] = asyncio.Queue(READ_AHEAD)
        self._abandoned = False
        self.task = asyncio.create_task(self._run(), name="stream pump")

    async def _run(self) -> None:
        try:
            handed = 0
            async for chunk in self._upstream:
                self._meter.saw_chunk(chunk)
                if not self._abandoned:
                    await self._queue.put(chunk)
                    handed += 1
                    if handed <= FIRST_CHUNKS:
                        await asyncio.sleep(0)
            item: object = _END
        except Exception as exc:
            item = _Failed(exc)
        finally:
            if isinstance(self._upstream, AsyncGenerator):
                await self._upstream.aclose()
        if not self._abandoned:
            await self._queue.put(item)

    async def chunks(self) -> AsyncGenerator[_Chunk, None]:
        """The chunks in order; an upstream failure is raised here, where the consumer is."""
        while True:
            item = await self._queue.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            assert isinstance(item, _Chunk)
            yield item

    def abandon(self) -> None:
        """The consumer is gone: stop queueing (and unblock a pump waiting for room)."""
        self._abandoned = True
        while not self._queue.empty():
            self._queue.get_nowait()


class Drains:
    """The drains of this process: bounded in time and in number; `stop` ends them at shutdown."""

    def __init__(self, seconds: float, limit: int) -> None:
        self._seconds = seconds
        self._limit = limit
        self._running: set[asyncio.Task[None]] = set()
        self.started = 0
        """Drains started since the process began."""
        self.refused = 0
        """Disconnects not drained because `limit` drains were running (or draining is off)."""
        self.timed_out = 0
        """Drains cut at the time bound."""

    @property
    def running(self) -> int:
        return len(self._running)

    def adopt(self, pump: Pump) -> asyncio.Task[None]:
        """Keeps the pump reading within the bounds, or cancels it at once; returns the task to wait for."""
        pump.abandon()
        task = pump.task
        if task.done():
            return task
        if len(self._running) >= self._limit or self._seconds <= 0:
            self.refused += 1
            task.cancel()
            return task
        self.started += 1
        self._running.add(task)
        timer = asyncio.get_running_loop().call_later(self._seconds, self._time_out, task)

        def finished(done: asyncio.Task[None]) -> None:
            timer.cancel()
            self._running.discard(done)

        task.add_done_callback(finished)
        return task

    def _time_out(self, task: asyncio.Task[None]) -> None:
        if not task.done():
            self.timed_out += 1
            task.cancel()

    async def stop(self, grace: float) -> None:
        """At shutdown: lets drains finish within `grace`, then cancels the rest (they settle as estimated)."""
        if self._running:
            await asyncio.wait(set(self._running), timeout=grace)
        rest = set(self._running)
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)
