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
    events: AsyncIterator[bytes],
    *,
    error_event: Callable[[Exception], bytes],
    done_event: bytes | None = DONE_EVENT,
    keepalive_seconds: float = 15.0,
    headers: dict[str, str] | None = None,
) -> StreamingResponse:
    """A streaming response of framed `events`, started only once the first event is there.

    Raises whatever `events` raises before its first event. Later errors are framed by `error_event`
    and end the stream without `done_event`. A `: keep-alive` comment goes out after each
    `keepalive_seconds` of silence.
    """
    paced = _with_keepalive(events, keepalive_seconds)
    first: bytes | None = None
    try:
        while first is None:  # no keep-alive before the first event: until then an error is an HTTP error
            first = await anext(paced)
    except StopAsyncIteration:
        first = None  # an empty stream: only the terminator follows
    except BaseException:
        await paced.aclose()
        raise
    return StreamingResponse(
        _body(first, paced, error_event, done_event),
        media_type=SSE_MEDIA_TYPE,
        headers={**SSE_HEADERS, **(headers or {})},
    )


async def _body(
    first: bytes | None,
    rest: AsyncGenerator[bytes | None, None],
    error_event: Callable[[Exception], bytes],
    done_event: bytes | None,
) -> AsyncIterator[bytes]:
    try:
        if first is not None:
            yield first
        async for event in rest:
            yield KEEPALIVE_COMMENT if event is None else event
    except Exception as exc:
        yield error_event(exc)
        return
    finally:
        await rest.aclose()
    if done_event is not None:
        yield done_event


async def _with_keepalive(source: AsyncIterator[bytes], interval: float) -> AsyncGenerator[bytes | None, None]:
    """`source`'s items, with None after each `interval` of silence; never cancels a pending read.

    One reader task feeds a queue so that the wait for the next item can time out safely: timing out
    a read of a gRPC stream itself would cancel the call.
    """
    queue: asyncio.Queue[tuple[bytes | None, BaseException | None, bool]] = asyncio.Queue(maxsize=1)

    async def read() -> None:
        try:
            async for item in source:
                await queue.put((item, None, False))
        except Exception as exc:
            await queue.put((None, exc, True))
            return
        await queue.put((None, None, True))

    reader = asyncio.create_task(read(), name="sse-reader")
    try:
        while True:
            try:
                async with asyncio.timeout(interval):
                    item, error, finished = await queue.get()
            except TimeoutError:
                yield None
                continue
            if error is not None:
                raise error
            if finished:
                return
            yield item
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
