"""The gRPC edge: request id, authentication against the access table, domain errors to statuses.

One interceptor does all three so each call pays for one wrapper; wrapped handlers are cached per method.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any, TypeVar

import grpc
from google.rpc import status_pb2

from server.access import ANONYMOUS, Principal, Role
from server.auth import Authenticator
from server.errors import AuthenticationError, PermissionDeniedError, TollgateError
from server.rpc_status import STATUS_DETAILS_KEY, error_status, internal_status

log = logging.getLogger(__name__)

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
PRINCIPAL: contextvars.ContextVar[Principal] = contextvars.ContextVar("principal", default=ANONYMOUS)
CLIENT_IP: contextvars.ContextVar[str] = contextvars.ContextVar("client_ip", default="")
ABORTED_WITH: contextvars.ContextVar[str] = contextvars.ContextVar("aborted_with", default="UNKNOWN")
"""The status code name this call was aborted with, for metrics."""

_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")
_MAX_REQUEST_ID = 128
_LOOPBACK = frozenset({"127.0.0.1", "::1"})


def current_principal() -> Principal:
    """The caller of the RPC running in this task."""
    return PRINCIPAL.get()


def current_request_id() -> str:
    """The id of the RPC running in this task (the client's x-request-id, or a new one)."""
    return REQUEST_ID.get()


def current_client_ip() -> str:
    """The address of the caller of the RPC running in this task ("" if unknown)."""
    return CLIENT_IP.get()


def metadata_value(context: grpc.aio.ServicerContext[Any, Any], key: str) -> str:
    """One text metadata value of the call ("" when absent)."""
    return _metadata(context).get(key, "")


class EdgeInterceptor(grpc.aio.ServerInterceptor):
    """Refuses methods missing from the access table, authenticates, and maps errors for every call."""

    def __init__(
        self,
        access: Mapping[str, frozenset[Role]],
        authenticator: Authenticator,
        on_finished: Callable[[str, str, float], None] = lambda method, code, seconds: None,
    ) -> None:
        self._access = access
        self._authenticator = authenticator
        self._on_finished = on_finished
        """Told of every call's method, status code name and duration (metrics)."""
        self._wrapped: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[_Req, _Resp] | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[_Req, _Resp] | None:
        method = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None:
            return cached
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        roles = self._access.get(method)
        if roles is None:
            log.error("method %s is not in the access table; refusing it", method)
            roles = frozenset()
        wrapped = self._wrap(handler, method, roles)
        self._wrapped[method] = wrapped
        return wrapped

    def _wrap(
        self, handler: grpc.RpcMethodHandler[_Req, _Resp], method: str, roles: frozenset[Role]
    ) -> grpc.RpcMethodHandler[_Req, _Resp]:
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(handler.unary_unary, method, roles),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            # An async generator yields its responses; a coroutine writes them through the context.
            wrap = self._streaming if inspect.isasyncgenfunction(handler.unary_stream) else self._unary
            return grpc.unary_stream_rpc_method_handler(
                wrap(handler.unary_stream, method, roles),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        # Client-streaming methods (reflection) are public: checked here once, served as they are.
        if Role.PUBLIC not in roles:
            raise RuntimeError("client-streaming methods must be public")
        return handler

    def _unary(
        self, behavior: Callable[..., Any], method: str, roles: frozenset[Role]
    ) -> Callable[..., Awaitable[Any]]:
        async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            with self._timed(method):
                try:
                    await self._enter(context, roles)
                    return await behavior(request, context)
                except Exception as exc:
                    await _abort(context, exc)

        return call

    def _streaming(
        self, behavior: Callable[..., Any], method: str, roles: frozenset[Role]
    ) -> Callable[..., AsyncIterator[Any]]:
        async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            with self._timed(method):
                try:
                    await self._enter(context, roles)
                    async for response in behavior(request, context):
                        yield response
                except Exception as exc:
                    await _abort(context, exc)

        return call

    @contextlib.contextmanager
    def _timed(self, method: str) -> Iterator[None]:
        """Reports the call's outcome: OK, the code it was aborted with, or CANCELLED."""
        started = time.monotonic()
        code = "OK"
        try:
            yield
        except grpc.aio.AbortError:
            code = ABORTED_WITH.get()
            raise
        except BaseException:
            code = "CANCELLED"
            raise
        finally:
            self._on_finished(method, code, time.monotonic() - started)

    async def _enter(self, context: grpc.aio.ServicerContext[Any, Any], roles: frozenset[Role]) -> None:
        """Sets the request id and the principal for this call; raises if the caller may not make it."""
        metadata = _metadata(context)
        request_id = metadata.get("x-request-id", "")[:_MAX_REQUEST_ID] or uuid.uuid4().hex
        REQUEST_ID.set(request_id)
        address = client_ip(context, metadata)
        CLIENT_IP.set(address)
        if Role.PUBLIC in roles:
            return
        credential = _bearer(metadata)
        if not credential:
            raise AuthenticationError("missing credential: send `authorization: Bearer <key>`")
        principal = await self._authenticator.authenticate(credential, address)
        if principal is None:
            raise AuthenticationError("invalid credential")
        if principal.role not in roles:
            raise PermissionDeniedError("this credential may not call this method", reason="wrong_credential_kind")
        PRINCIPAL.set(principal)


def client_ip(context: grpc.aio.ServicerContext[Any, Any], metadata: Mapping[str, str]) -> str:
    """The caller's address: the gateway's `x-forwarded-for` when the call comes over loopback, else the peer."""
    peer = _peer_address(context.peer() or "")
    forwarded = metadata.get("x-forwarded-for", "")
    if forwarded and peer in _LOOPBACK:
        return forwarded.split(",")[0].strip()
    return peer


def _peer_address(peer: str) -> str:
    """`ipv4:127.0.0.1:5000` → `127.0.0.1`; `ipv6:[::1]:5000` → `::1`; other transports → ""."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rpartition(":")[0]
    if kind == "ipv6":
        return rest.rpartition(":")[0].strip("[]")
    return ""


def _metadata(context: grpc.aio.ServicerContext[Any, Any]) -> dict[str, str]:
    pairs = context.invocation_metadata() or ()
    return {key: value for key, value in pairs if isinstance(value, str)}


def _bearer(metadata: Mapping[str, str]) -> str:
    value = metadata.get("authorization", "")
    scheme, _, credential = value.partition(" ")
    if scheme.lower() != "bearer":
        return ""
    return credential.strip()


async def _abort(context: grpc.aio.ServicerContext[Any, Any], exc: Exception) -> None:
    if isinstance(exc, grpc.aio.AbortError):
        raise exc
    request_id = REQUEST_ID.get()
    if isinstance(exc, TollgateError):
        status = error_status(exc, request_id)
    else:
        log.exception("unexpected error in request %s", request_id)
        status = internal_status(request_id)
    await _abort_with(context, status)


async def _abort_with(context: grpc.aio.ServicerContext[Any, Any], status: status_pb2.Status) -> None:
    ABORTED_WITH.set(_GRPC_CODES[status.code].name)
    await context.abort(
        _GRPC_CODES[status.code],
        status.message,
        trailing_metadata=((STATUS_DETAILS_KEY, status.SerializeToString()),),
    )


_GRPC_CODES: dict[int, grpc.StatusCode] = {code.value[0]: code for code in grpc.StatusCode}
