"""Server-sent events: framing, keep-alive comments, and errors before and after the first byte.

An error before the first event is raised to the caller, who answers with a normal HTTP error. After
it, the status line is gone: the error becomes an in-band event and the terminator is not sent, so the
client can tell the answer was cut. Leaving the stream (client disconnect) cancels the source.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Final

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

SSE_HEADERS: Final = {"cache-control": "no-cache", "x-accel-buffering": "no"}
SSE_MEDIA_TYPE: Final = "text/event-stream"
KEEPALIVE_COMMENT: Final = b": keep-alive\n\n"
DONE_EVENT: Final = b"data: [DONE]\n\n"


def frame(data: bytes, event: str | None = None) -> bytes:
    """One SSE event; `data` must be a single line (compact JSON is)."""
    if event is None:
        return b"data: " + data + b"\n\n"
    return b"event: " + event.encode("ascii") + b"\ndata: " + data + b"\n\n"


async def event_stream_response(
    events: AsyncGenerator[bytes, None],
    *,
    error_event: Callable[[Exception], bytes],
    done_event: bytes | None = DONE_EVENT,
    keepalive_seconds: float = 15.0,
    headers: dict[str, str] | None = None,
) -> StreamingResponse:
    """A streaming response of framed `events`, started only once the first event is there.

    Raises whatever `events` raises before its first event. Later errors are framed by `error_event`
    and end the stream without `done_event`. A `: keep-alive` comment goes out after each
    `keepalive_seconds` of silence once the first event is out (before it, an error is an HTTP error).
    """
    first: bytes | None = None
    try:
        first = await anext(events)
    except StopAsyncIteration:
        first = None  # an empty stream: only the terminator follows
    except BaseException:
        await events.aclose()
        raise
    return _EventStreamResponse(
        _body(first, events, error_event, done_event),
        keepalive_seconds=keepalive_seconds,
        headers={**SSE_HEADERS, **(headers or {})},
    )


async def _body(
    first: bytes | None,
    rest: AsyncGenerator[bytes, None],
    error_event: Callable[[Exception], bytes],
    done_event: bytes | None,
) -> AsyncIterator[bytes]:
    try:
        if first is not None:
            yield first
        async for event in rest:
            yield event
    except Exception as exc:
        yield error_event(exc)
        return
    finally:
        await rest.aclose()
    if done_event is not None:
        yield done_event


class _EventStreamResponse(StreamingResponse):
    """Sends the events and, beside them, a keep-alive comment after each interval of silence.

    A timer task writes the comment, sharing the connection with the events under a lock. The read
    of the next event is never wrapped in a timeout (timing one out would cancel a gRPC call), and an
    event costs no extra task switch, queue or timer: only the timer's one wake-up per interval.
    """

    body_iterator: AsyncIterator[bytes]

    def __init__(self, body: AsyncIterator[bytes], *, keepalive_seconds: float, headers: dict[str, str]) -> None:
        super().__init__(body, media_type=SSE_MEDIA_TYPE, headers=headers)
        self._keepalive_seconds = keepalive_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Streams in the request's own task; a plain task listening for the client's disconnect cancels it.

        Starlette's StreamingResponse (ASGI 2.3, as uvicorn speaks it) runs the body in an anyio task group beside
        its listener instead: one more task to start before the first event goes out.
        """
        streaming = asyncio.current_task()
        assert streaming is not None
        left = False

        async def listen() -> None:
            nonlocal left
            while (await receive())["type"] != "http.disconnect":
                pass
            left = True
            streaming.cancel()

        listener = asyncio.create_task(listen(), name="sse-disconnect")
        try:
            await self.stream_response(send)
        except asyncio.CancelledError:
            if not left or streaming.uncancel() > 0:  # cancelled by someone else too: that cancellation goes on
                raise
        finally:
            listener.cancel()

    async def stream_response(self, send: Send) -> None:
        loop = asyncio.get_running_loop()
        interval = self._keepalive_seconds
        writing = asyncio.Lock()
        last_write = loop.time()

        async def write(chunk: bytes) -> None:
            nonlocal last_write
            async with writing:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            last_write = loop.time()

        async def keep_alive() -> None:
            while True:
                wait = last_write + interval - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                else:
                    await write(KEEPALIVE_COMMENT)

        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        timer = asyncio.create_task(keep_alive(), name="sse-keepalive")
        try:
            async for event in self.body_iterator:
                await write(event)
        finally:
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer
        await send({"type": "http.response.body", "body": b"", "more_body": False})
