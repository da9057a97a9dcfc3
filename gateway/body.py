"""What every gateway handler does with a request: read a bounded body, and notice a client that left."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

import grpc
from starlette.requests import Request
from starlette.types import Receive

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
_T = TypeVar("_T")


class BodyTooLargeError(Exception):
    """The body is over the limit (413); reading stopped there."""


class DisconnectedError(Exception):
    """The client went away while its call was running; the call was cancelled."""


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing it as soon as the declared or received size passes `limit`."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLargeError
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError
        chunks.append(chunk)
    return b"".join(chunks)


async def unless_disconnected(operation: Awaitable[_T], call: grpc.aio.Call, receive: Receive) -> _T:
    """Awaits a call step; if the client disconnects meanwhile, cancels the call and raises DisconnectedError."""
    disconnected = asyncio.Event()

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        disconnected.set()
        call.cancel()

    watcher = asyncio.ensure_future(watch())
    try:
        return await operation
    except asyncio.CancelledError:
        if disconnected.is_set():
            raise DisconnectedError from None
        raise
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
