"""One HTTP exchange on raw ASGI: send helpers, waits with keep-alives, disconnect watching, abrupt cuts."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

import anyio
from starlette.types import Receive, Send

JSON = b"application/json"
EVENT_STREAM = b"text/event-stream; charset=utf-8"


class StreamCut(Exception):
    """Raised out of the app to make uvicorn drop the connection mid-body (no terminating chunk)."""


class _QuietCuts(logging.Filter):
    """Keeps uvicorn from logging the deliberate StreamCut as an application error."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], StreamCut))


def silence_cuts() -> None:
    """Installs the filter once on uvicorn's error logger."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(existing, _QuietCuts) for existing in logger.filters):
        logger.addFilter(_QuietCuts())


async def read_body(receive: Receive) -> bytes | None:
    """The request body, or None when the client went away first."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


class Exchange:
    """The response side of one request, and whether the client went away."""

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send
        self.started = False
        self.complete = False
        self.disconnected = False

    async def start(self, status: int, content_type: bytes, headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
        self.started = True
        all_headers = [(b"content-type", content_type), *headers]
        if content_type == EVENT_STREAM:
            all_headers.append((b"cache-control", b"no-cache"))
        await self._send({"type": "http.response.start", "status": status, "headers": all_headers})

    async def write(self, data: bytes) -> None:
        await self._send({"type": "http.response.body", "body": data, "more_body": True})

    async def end(self, data: bytes = b"") -> None:
        self.complete = True
        await self._send({"type": "http.response.body", "body": data, "more_body": False})

    async def respond(
        self, status: int, body: bytes, headers: Sequence[tuple[bytes, bytes]] = (), content_type: bytes = JSON
    ) -> None:
        await self.start(status, content_type, headers)
        await self.end(body)

    async def wait(self, ms: float, keepalive_ms: float, keepalive: bytes) -> None:
        """Waits `ms`; with `keepalive_ms` the response must have started and `keepalive` is sent that often."""
        if ms <= 0:
            return
        if keepalive_ms <= 0:
            await anyio.sleep(ms / 1000)
            return
        deadline = anyio.current_time() + ms / 1000
        while (left := deadline - anyio.current_time()) > 0:
            await anyio.sleep(min(left, keepalive_ms / 1000))
            if anyio.current_time() < deadline:
                await self.write(keepalive)

    async def guarded(self, work: Callable[[], Awaitable[None]]) -> None:
        """Runs `work`, cancelling it as soon as the client disconnects (uvicorn's send would not tell)."""
        async with anyio.create_task_group() as group:

            async def watch() -> None:
                while (await self._receive())["type"] != "http.disconnect":
                    pass
                if not self.complete:
                    self.disconnected = True
                    group.cancel_scope.cancel()

            group.start_soon(watch)
            try:
                await work()
            finally:
                group.cancel_scope.cancel()
