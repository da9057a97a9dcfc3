"""Domain errors as google.rpc.Status: the only place that decides what a failed call tells its caller."""

from __future__ import annotations

import math

from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from server.errors import ERROR_DOMAIN, InternalError, TollgateError

STATUS_DETAILS_KEY = "grpc-status-details-bin"


def error_status(error: TollgateError, request_id: str) -> status_pb2.Status:
    """The Status of a domain error, with ErrorInfo (reason = OpenAI error code) and RetryInfo when set."""
    metadata = {"type": error.error_type, "request_id": request_id, **error.metadata}
    if error.param:
        metadata["param"] = error.param
    details = [error_details_pb2.ErrorInfo(reason=error.reason, domain=ERROR_DOMAIN, metadata=metadata)]
    if error.retry_after is not None:
        seconds = max(0.0, error.retry_after)
        whole = math.floor(seconds)
        delay = duration_pb2.Duration(seconds=whole, nanos=int((seconds - whole) * 1e9))
        details.append(error_details_pb2.RetryInfo(retry_delay=delay))
    packed = []
    for detail in details:
        holder = any_pb2.Any()
        holder.Pack(detail)
        packed.append(holder)
    return status_pb2.Status(code=int(error.status), message=error.message, details=packed)


def internal_status(request_id: str) -> status_pb2.Status:
    """What an unexpected exception becomes: a generic message, nothing of the exception itself."""
    error = InternalError("internal error; the request id identifies it in the server log")
    status = error_status(error, request_id)
    status.code = code_pb2.INTERNAL
    return status
