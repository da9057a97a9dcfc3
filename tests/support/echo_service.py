"""The servicer of tests/protos/transcoding_test.proto: echoes requests, fails or waits on request."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from types import ModuleType
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2, message_factory
from google.rpc import error_details_pb2, status_pb2

SERVICE = "TranscodingTestService"
ERROR_DOMAIN = "tollgate.test"
_CODES = {code.value[0]: code for code in grpc.StatusCode}


class EchoServicer:
    """Answers every method with the request it got, the metadata it saw and its deadline.

    `fail.code` makes it abort with that status plus ErrorInfo/RetryInfo details; `delay_ms`
    makes it wait first. `cancelled` is set when a call is cancelled while it waits.
    """

    def __init__(self, pb2: ModuleType) -> None:
        self.pb2 = pb2
        self.service = pb2.DESCRIPTOR.services_by_name[SERVICE]
        self.cancelled = asyncio.Event()
        self.calls: list[str] = []

    def handler(self) -> grpc.GenericRpcHandler:
        handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
        for method in self.service.methods:
            request_class = message_factory.GetMessageClass(method.input_type)
            response_class = message_factory.GetMessageClass(method.output_type)
            factory: Callable[..., grpc.RpcMethodHandler[Any, Any]]
            if method.server_streaming:
                factory, behaviour = grpc.unary_stream_rpc_method_handler, self._streamer(method.name)
            else:
                factory, behaviour = grpc.unary_unary_rpc_method_handler, self._unary(method.name)
            handlers[method.name] = factory(
                behaviour,
                request_deserializer=request_class.FromString,
                response_serializer=response_class.SerializeToString,
            )
        return grpc.method_handlers_generic_handler(self.service.full_name, handlers)

    def _unary(self, name: str) -> Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Any]:
        async def answer(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            self.calls.append(name)
            await self._wait(request)
            if request.fail.code:
                await _abort(request.fail, context)
            return self._reply(name, request, context, 0)

        return answer

    def _streamer(self, name: str) -> Callable[[Any, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Any]]:
        async def answer(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            self.calls.append(name)
            for sequence in range(request.stream_count):
                if request.fail.code and sequence == request.fail.after:
                    await _abort(request.fail, context)
                if sequence:
                    await self._wait(request)
                yield self._reply(name, request, context, sequence)
            if request.fail.code and request.fail.after >= request.stream_count:
                await _abort(request.fail, context)

        return answer

    async def _wait(self, request: Any) -> None:
        if request.delay_ms:
            try:
                await asyncio.sleep(request.delay_ms / 1000)
            except asyncio.CancelledError:
                self.cancelled.set()
                raise

    def _reply(self, name: str, request: Any, context: grpc.aio.ServicerContext[Any, Any], sequence: int) -> Any:
        seen = {key: value for key, value in context.invocation_metadata() or () if key != "user-agent"}
        remaining = context.time_remaining()
        return self.pb2.EchoResponse(
            request=request,
            metadata=seen,
            time_remaining=remaining or 0.0,
            sequence=sequence,
            method=name,
        )


async def _abort(fail: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
    code = _CODES[fail.code]
    status = status_pb2.Status(code=fail.code, message=fail.message)
    if fail.reason:
        detail = any_pb2.Any()
        detail.Pack(error_details_pb2.ErrorInfo(reason=fail.reason, domain=ERROR_DOMAIN, metadata={"limit": "10"}))
        status.details.append(detail)
    if fail.retry_delay_ms:
        delay = duration_pb2.Duration()
        delay.FromMilliseconds(fail.retry_delay_ms)
        detail = any_pb2.Any()
        detail.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
        status.details.append(detail)
    await context.abort(
        code, fail.message, trailing_metadata=(("grpc-status-details-bin", status.SerializeToString()),)
    )
