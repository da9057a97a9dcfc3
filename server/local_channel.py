"""The gateway's way to this process's own servicers: the gRPC call semantics, without the loopback socket.

When the gateway and the gRPC server share a process (`tollgate serve`), a call through a real channel
serialises, frames HTTP/2, crosses the C core's threads and parses again, for every call and every
streamed chunk: about half the CPU of a relayed call (`bench/RESULTS.md`). `LocalChannel` keeps what the
gateway relies on and drops the transport:
- the handlers the server registered, behind the same `EdgeInterceptor` instance (authentication,
  request id, access table, domain errors to statuses, RPC metrics);
- each call in a task of its own with an empty context, as the server runs it, so the server's context
  variables never reach the gateway's task;
- requests and responses crossing as bytes through the handlers' own (de)serialisers, so each side keeps
  its own message objects, as over the wire;
- deadlines (the handler is cancelled, the caller sees DEADLINE_EXCEEDED), `cancel()` (the handler is
  cancelled where it waits), aborts as `grpc.aio.AioRpcError` with the handler's status, details and
  trailing metadata, and a bounded read-ahead on streams;
- `close(grace)` refuses new calls (UNAVAILABLE) and cancels what still runs after `grace`.
External gRPC clients use the real server; `tollgate gateway`, in a process of its own, a real channel.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from types import TracebackType
from typing import Any, cast

import grpc

from server.local_calls import CallStart, LocalContext, LocalStreamCall, LocalUnaryCall, Metadata, Spawn, rpc_error
from server.services import Servicers

Handlers = dict[str, "grpc.RpcMethodHandler[Any, Any]"]
Serializer = Callable[[Any], bytes] | None
Deserializer = Callable[[bytes], Any] | None


class MethodTable:
    """The method handlers servicers register, by full method name; they register as on a `grpc.aio.Server`."""

    def __init__(self) -> None:
        self.handlers: Handlers = {}

    def add_generic_rpc_handlers(self, generic_rpc_handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        pass  # every generated service registers its methods by name too, below

    def add_registered_method_handlers(self, service_name: str, method_handlers: Handlers) -> None:
        for name, handler in method_handlers.items():
            self.handlers[f"/{service_name}/{name}"] = handler


@dataclasses.dataclass(frozen=True)
class _CallDetails(grpc.HandlerCallDetails):
    method: str
    invocation_metadata: tuple[tuple[str, str | bytes], ...]


class LocalChannel(grpc.aio.Channel):
    """A `grpc.aio.Channel` whose unary and server-streaming calls run the handlers of `table` in this process."""

    def __init__(self, table: MethodTable, interceptor: grpc.aio.ServerInterceptor) -> None:
        self._table = table
        self._interceptor = interceptor
        self._calls: set[asyncio.Task[Any]] = set()
        self._closed = False

    @classmethod
    def serving(cls, servicers: Servicers, interceptor: grpc.aio.ServerInterceptor) -> LocalChannel:
        """A channel to `servicers`, each call behind `interceptor` (the gRPC server's own instance)."""
        table = MethodTable()
        # The generated add_*_to_server functions call only the two registration methods MethodTable has.
        servicers.register(cast(grpc.aio.Server, table))
        return cls(table, interceptor)

    def unary_unary(
        self,
        method: str,
        request_serializer: Serializer = None,
        response_deserializer: Deserializer = None,
        _registered_method: bool | None = False,
    ) -> _UnaryUnary:
        return _UnaryUnary(self._starter(method, request_serializer, response_deserializer), LocalUnaryCall)

    def unary_stream(
        self,
        method: str,
        request_serializer: Serializer = None,
        response_deserializer: Deserializer = None,
        _registered_method: bool | None = False,
    ) -> _UnaryStream:
        return _UnaryStream(self._starter(method, request_serializer, response_deserializer), LocalStreamCall)

    def stream_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        raise grpc.aio.UsageError("client-streaming calls go through the gRPC server, not the local channel")

    def stream_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        raise grpc.aio.UsageError("client-streaming calls go through the gRPC server, not the local channel")

    def _starter(self, method: str, serializer: Serializer, deserializer: Deserializer) -> _Starter:
        return _Starter(self._lookup, self._spawn, method, serializer, deserializer)

    async def _lookup(self, method: str, metadata: Metadata) -> grpc.RpcMethodHandler[Any, Any]:
        if self._closed:
            raise rpc_error(grpc.StatusCode.UNAVAILABLE, "the server is shutting down")

        async def registered(details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler[Any, Any] | None:
            return self._table.handlers.get(details.method)

        handler = await self._interceptor.intercept_service(registered, _CallDetails(method, tuple(metadata)))
        if handler is None:
            raise rpc_error(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")
        return handler

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Runs a call's server side in a task of its own, in an empty context, as the gRPC server would."""
        task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(work, context=contextvars.Context())
        self._calls.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._calls.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a caller that stopped listening leaves no warning behind

    async def close(self, grace: float | None = None) -> None:
        """Refuses new calls; lets running ones finish within `grace` seconds, then cancels them."""
        self._closed = True
        if self._calls and grace:
            await asyncio.wait(set(self._calls), timeout=grace)
        running = set(self._calls)
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)

    async def __aenter__(self) -> LocalChannel:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return grpc.ChannelConnectivity.SHUTDOWN if self._closed else grpc.ChannelConnectivity.READY

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        while self.get_state() == last_observed_state:
            await asyncio.sleep(0.1)

    async def channel_ready(self) -> None:
        return None


@dataclasses.dataclass(frozen=True)
class _Starter:
    lookup: Callable[[str, Metadata], Awaitable[grpc.RpcMethodHandler[Any, Any]]]
    spawn: Spawn
    method: str
    serializer: Serializer
    deserializer: Deserializer

    def __call__(self, request: Any, timeout: float | None, metadata: grpc.aio.Metadata | Metadata | None) -> CallStart:
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        return CallStart(
            self.lookup,
            self.spawn,
            self.method,
            self.serializer(request) if self.serializer else request,
            self.deserializer or (lambda data: data),
            LocalContext(tuple(metadata or ()), deadline),
        )


class _LocalMethod:
    """A multi-callable: calling it starts a call of the handler."""

    def __init__(self, start: _Starter, call: Callable[[CallStart], Any]) -> None:
        self._start = start
        self._call = call

    def __call__(
        self,
        request: Any,
        *,
        timeout: float | None = None,
        metadata: grpc.aio.Metadata | Metadata | None = None,
        credentials: grpc.CallCredentials | None = None,
        wait_for_ready: bool | None = None,
        compression: grpc.Compression | None = None,
    ) -> Any:
        """Credentials, waiting for readiness and compression mean nothing in-process."""
        return self._call(self._start(request, timeout, metadata))


class _UnaryUnary(_LocalMethod, grpc.aio.UnaryUnaryMultiCallable[Any, Any]):
    pass


class _UnaryStream(_LocalMethod, grpc.aio.UnaryStreamMultiCallable[Any, Any]):
    pass
