"""What every gateway handler does with a request: read a bounded body in time, and notice a client that left."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable
from typing import TypeVar

import grpc
from google.rpc import status_pb2
from starlette.requests import Request
from starlette.types import Scope

from gateway.errors import make_status
from gateway.http_server import CONNECTION_LOST

_T = TypeVar("_T")


@dataclasses.dataclass(frozen=True)
class BodyLimits:
    """How large a request body may be, and how long it may take to arrive."""

    max_bytes: int = 8 * 1024 * 1024
    timeout_seconds: float = 30.0


DEFAULT_BODY_LIMITS = BodyLimits()


class BodyRejectedError(Exception):
    """The body is too large (413) or too slow to arrive (408); reading stopped there. `status` says which."""

    def __init__(self, status: status_pb2.Status) -> None:
        super().__init__(status.message)
        self.status = status


class DisconnectedError(Exception):
    """The client went away while its call was running; the call was cancelled."""


async def read_body(request: Request, limits: BodyLimits) -> bytes:
    """The whole body within the time limit, refused as soon as the declared or received size passes the size limit.

    A slow client cannot hold a connection and a handler by trickling its body.
    """
    limit, timeout = limits.max_bytes, limits.timeout_seconds
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                chunks.append(chunk)
    except TimeoutError:
        message = f"the request body did not arrive within {timeout:g} seconds"
        raise BodyRejectedError(
            make_status(grpc.StatusCode.DEADLINE_EXCEEDED, message, reason="request_timeout")
        ) from None
    return b"".join(chunks)


def _too_large(limit: int) -> BodyRejectedError:
    return BodyRejectedError(
        make_status(grpc.StatusCode.INVALID_ARGUMENT, f"request body exceeds {limit} bytes", reason="request_too_large")
    )


async def unless_disconnected(operation: Awaitable[_T], call: grpc.aio.Call, scope: Scope) -> _T:
    """Awaits a call step; if the client's connection is lost meanwhile, cancels the call and raises DisconnectedError.

    Tollgate's HTTP server says so through the request's `CONNECTION_LOST` future (http_server.py). Under another
    ASGI server nothing is watched here: a client that left is noticed when its answer is written.
    """
    lost: asyncio.Future[None] | None = scope.get("extensions", {}).get(CONNECTION_LOST, {}).get("future")
    if lost is None:
        return await operation

    def cancel(_: object) -> None:
        call.cancel()

    lost.add_done_callback(cancel)
    try:
        return await operation
    except asyncio.CancelledError:
        if lost.done():
            raise DisconnectedError from None
        raise
    finally:
        lost.remove_done_callback(cancel)
