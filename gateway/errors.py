"""gRPC status → HTTP: grpc-gateway's status table, google.rpc.Status parsing and its JSON body."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import grpc
from google.protobuf import any_pb2, json_format
from google.rpc import error_details_pb2, status_pb2

STATUS_DETAILS_KEY = "grpc-status-details-bin"

HTTP_STATUS_BY_CODE: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}

_CODE_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


def http_status(code: grpc.StatusCode | int) -> int:
    """The HTTP status for a gRPC status code (a `grpc.StatusCode` or its number); 500 if unknown."""
    if isinstance(code, int):
        code = _CODE_BY_NUMBER.get(code, grpc.StatusCode.UNKNOWN)
    return HTTP_STATUS_BY_CODE.get(code, 500)


def status_code(number: int) -> grpc.StatusCode:
    return _CODE_BY_NUMBER.get(number, grpc.StatusCode.UNKNOWN)


# Reasons whose HTTP status is not the one their gRPC code maps to: 402 and 422 have no gRPC code,
# and 408 and 413 are transport answers.
HTTP_STATUS_BY_REASON = {
    "insufficient_quota": 402,
    "request_timeout": 408,
    "request_too_large": 413,
    "idempotency_key_reused": 422,
}
ERROR_DOMAIN = "tollgate"


def make_status(
    code: grpc.StatusCode,
    message: str,
    details: list[any_pb2.Any] | None = None,
    *,
    reason: str = "",
    metadata: Mapping[str, str] | None = None,
) -> status_pb2.Status:
    """A Status; with `reason`, an ErrorInfo detail of the gateway's own making comes first."""
    status = status_pb2.Status(code=code.value[0], message=message, details=details or [])
    if reason:
        info = error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=metadata or {})
        status.details.insert(0, any_pb2.Any())
        status.details[0].Pack(info)
    return status


def error_info(status: status_pb2.Status) -> error_details_pb2.ErrorInfo | None:
    """The status's ErrorInfo detail, if it has one."""
    for item in status.details:
        if item.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            item.Unpack(info)
            return info
    return None


def status_http_status(status: status_pb2.Status) -> int:
    """The HTTP status of a failed call: its ErrorInfo reason's when the table has one, else its code's."""
    info = error_info(status)
    if info is not None and info.reason in HTTP_STATUS_BY_REASON:
        return HTTP_STATUS_BY_REASON[info.reason]
    return http_status(status.code)


def status_from_rpc_error(error: grpc.aio.AioRpcError) -> status_pb2.Status:
    """The google.rpc.Status of a failed call, details taken from `grpc-status-details-bin`.

    The details trailer wins when it is well-formed and agrees with the call's code, as in
    grpcio-status; otherwise the status carries the code and message only.
    """
    code = error.code()
    status = make_status(code, error.details() or "")
    for key, value in error.trailing_metadata() or ():
        if key != STATUS_DETAILS_KEY or not isinstance(value, bytes):
            continue
        try:
            parsed = status_pb2.Status.FromString(value)
        except Exception:  # a malformed trailer must not hide the real error
            break
        if parsed.code == status.code:
            return parsed
    return status


def status_to_json(status: status_pb2.Status) -> dict[str, Any]:
    """`{"code", "message", "details": [{"@type": ..., ...}]}`; unknown detail types keep their bytes."""
    return {"code": status.code, "message": status.message, "details": [_detail(item) for item in status.details]}


def retry_after_seconds(status: status_pb2.Status) -> int | None:
    """The RetryInfo delay in whole seconds, rounded up; None without RetryInfo."""
    for item in status.details:
        if item.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            item.Unpack(info)
            delay = info.retry_delay
            seconds: int = delay.seconds + (1 if delay.nanos > 0 else 0)
            return max(0, seconds)
    return None


def error_headers(status: status_pb2.Status) -> dict[str, str]:
    """Response headers an error carries: `Retry-After` from RetryInfo."""
    seconds = retry_after_seconds(status)
    return {} if seconds is None else {"retry-after": str(seconds)}


def _detail(item: any_pb2.Any) -> dict[str, Any]:
    try:
        return json_format.MessageToDict(item, preserving_proto_field_name=True)
    except (TypeError, KeyError, json_format.Error):
        return {"@type": item.type_url, "value": base64.b64encode(item.value).decode()}
