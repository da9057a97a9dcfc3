"""The calls of a `LocalChannel`: a unary call to await, a server stream to read; both cancellable."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Coroutine, Generator, Sequence
from typing import Any

import grpc

STREAM_READ_AHEAD = 16
"""Responses a streaming handler may produce before the caller reads them (flow control, in effect)."""
LOCAL_PEER = "ipv4:127.0.0.1:0"
"""What `context.peer()` says: the caller is this process, as trusted as a loopback peer."""
Metadata = Sequence[tuple[str, str | bytes]]


def rpc_error(code: grpc.StatusCode, details: str, trailing: Metadata = ()) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(*trailing), details)


class LocalContext:
    """The part of `grpc.aio.ServicerContext` a handler behind the edge interceptor uses."""

    def __init__(self, metadata: Metadata, deadline: float | None) -> None:
        self._metadata = tuple(metadata)
        self.deadline = deadline
        """Event-loop time by which the call must end; None for no deadline."""
        self.aborted: grpc.aio.AioRpcError | None = None

    def invocation_metadata(self) -> Metadata:
        return self._metadata

    def peer(self) -> str:
        return LOCAL_PEER

    def time_remaining(self) -> float | None:
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - asyncio.get_running_loop().time())

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: Metadata = ()) -> None:
        self.aborted = rpc_error(code, details, trailing_metadata)
        raise grpc.aio.AbortError()


HandlerLookup = Callable[[str, Metadata], Awaitable["grpc.RpcMethodHandler[Any, Any]"]]
"""The handler of a method (behind the interceptor); raises AioRpcError when there is none or no more."""
Spawn = Callable[[Coroutine[Any, Any, Any]], "asyncio.Task[Any]"]


@dataclasses.dataclass(frozen=True)
class CallStart:
    """What a call starts from: its method, the request as bytes, the caller's deserialiser, its context."""

    lookup: HandlerLookup
    spawn: Spawn
    method: str
    request: bytes
    deserializer: Callable[[bytes], Any]
    context: LocalContext

    async def begin(self, *, streaming: bool) -> tuple[Callable[[Any, Any], Any], Any, Callable[[Any], Any]]:
        """The handler's behaviour, the request as it decodes it, and how a response reaches the caller."""
        handler = await self.lookup(self.method, self.context.invocation_metadata())
        behavior = handler.unary_stream if streaming else handler.unary_unary
        if behavior is None:
            raise rpc_error(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")
        parse, encode = handler.request_deserializer, handler.response_serializer
        request = parse(self.request) if parse else self.request

        def to_caller(response: Any) -> Any:
            return self.deserializer(encode(response) if encode else response)

        return behavior, request, to_caller

    def failure(self, exc: Exception, deadline: asyncio.Timeout) -> grpc.aio.AioRpcError:
        """The error the caller sees for a handler that raised `exc`, as the gRPC server would report it."""
        if isinstance(exc, grpc.aio.AioRpcError):
            return exc
        if isinstance(exc, grpc.aio.AbortError) and self.context.aborted is not None:
            return self.context.aborted
        if isinstance(exc, TimeoutError) and deadline.expired():
            return rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
        return rpc_error(grpc.StatusCode.UNKNOWN, f"Unexpected {type(exc)}: {exc}")


class _Outcome:
    """Status, details and metadata of a call once its server side ended."""

    def __init__(self, start: CallStart, task: asyncio.Task[Any]) -> None:
        self._start = start
        self._task = task
        self._error: grpc.aio.AioRpcError | None = None
        self._cancelled = False

    def cancel(self) -> bool:
        if self._task.done() or self._cancelled:
            return False
        self._cancelled = True
        return self._task.cancel()

    def cancelled(self) -> bool:
        return self._cancelled or self._task.cancelled()

    def done(self) -> bool:
        return self._task.done()

    def time_remaining(self) -> float | None:
        return self._start.context.time_remaining()

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        self._task.add_done_callback(lambda _: callback(self))

    async def _ended(self) -> grpc.aio.AioRpcError | None:
        await asyncio.wait({self._task})
        if self.cancelled():
            return rpc_error(grpc.StatusCode.CANCELLED, "Locally cancelled by application!")
        return self._error

    async def code(self) -> grpc.StatusCode:
        error = await self._ended()
        return grpc.StatusCode.OK if error is None else error.code()

    async def details(self) -> str:
        error = await self._ended()
        return "" if error is None else error.details() or ""

    async def initial_metadata(self) -> grpc.aio.Metadata:
        return grpc.aio.Metadata()  # a caller's own, as gRPC gives each call (Metadata is mutable)

    async def trailing_metadata(self) -> grpc.aio.Metadata:
        error = await self._ended()
        return grpc.aio.Metadata() if error is None else error.trailing_metadata()

    async def wait_for_connection(self) -> None:
        return None


class LocalUnaryCall(_Outcome, grpc.aio.UnaryUnaryCall[Any, Any]):
    """Await it for the response; a caller cancelled while waiting cancels the handler too, as over gRPC."""

    def __init__(self, start: CallStart) -> None:
        super().__init__(start, start.spawn(self._serve(start)))

    async def _serve(self, start: CallStart) -> Any:
        deadline = asyncio.timeout_at(start.context.deadline)
        try:
            behavior, request, to_caller = await start.begin(streaming=False)
            async with deadline:
                response = await behavior(request, start.context)
            return to_caller(response)
        except Exception as exc:
            self._error = start.failure(exc, deadline)
            raise self._error from None

    def __await__(self) -> Generator[Any, None, Any]:
        return self._task.__await__()


_CANCELLED = object()


class LocalStreamCall(_Outcome, grpc.aio.UnaryStreamCall[Any, Any]):
    """`read()` or `async for`: the responses, then EOF; an error where the stream broke."""

    def __init__(self, start: CallStart) -> None:
        self._queue: asyncio.Queue[Any] = asyncio.Queue(STREAM_READ_AHEAD)
        self._ended_reading = False
        self._cut: grpc.aio.AioRpcError | None = None
        """Set when the server side was cancelled by anyone but the caller (the channel closing)."""
        super().__init__(start, start.spawn(self._serve(start)))

    async def _serve(self, start: CallStart) -> None:
        deadline = asyncio.timeout_at(start.context.deadline)
        try:
            behavior, request, to_caller = await start.begin(streaming=True)
            async with deadline:
                responses: AsyncGenerator[Any, None] = behavior(request, start.context)
                async with contextlib.aclosing(responses):  # a cancelled call ends the handler's generator now
                    async for response in responses:
                        await self._queue.put(to_caller(response))
            end: Any = grpc.aio.EOF
        except Exception as exc:
            end = self._error = start.failure(exc, deadline)
        except asyncio.CancelledError:
            if not self._cancelled:  # the reader must learn the stream ended, even with the queue full
                self._cut = self._error = rpc_error(grpc.StatusCode.CANCELLED, "the server cancelled the call")
                with contextlib.suppress(asyncio.QueueFull):
                    self._queue.put_nowait(self._cut)
            raise
        await self._queue.put(end)

    async def read(self) -> Any:
        if self._ended_reading:
            return grpc.aio.EOF
        if self._cancelled:
            raise asyncio.CancelledError
        item = self._cut if self._cut is not None and self._queue.empty() else await self._queue.get()
        if item is _CANCELLED or self._cancelled:
            raise asyncio.CancelledError
        if item is grpc.aio.EOF or isinstance(item, grpc.aio.AioRpcError):
            self._ended_reading = True
        if isinstance(item, grpc.aio.AioRpcError):
            raise item
        return item

    async def _responses(self) -> AsyncIterator[Any]:
        while (item := await self.read()) is not grpc.aio.EOF:
            yield item

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._responses()

    def cancel(self) -> bool:
        cancelled = super().cancel()
        if cancelled:
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(_CANCELLED)  # wakes a reader waiting on an empty queue
        return cancelled
