"""Anthropic's error shape `{"type": "error", "error": {"type", "message"}}` from a google.rpc.Status.

Statuses follow Anthropic's table. Tollgate's UNAVAILABLE (overloaded, upstream failing) is Anthropic's
529 overloaded_error, which Claude clients retry; an exhausted balance is 402 billing_error.
"""

from __future__ import annotations

from typing import Any

from google.rpc import status_pb2
from starlette.responses import JSONResponse

from gateway.errors import error_headers, status_http_status
from server import wire_json

_ANTHROPIC_STATUS = {503: 529}
_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def anthropic_status(status: status_pb2.Status) -> int:
    http = status_http_status(status)
    return _ANTHROPIC_STATUS.get(http, http)


def anthropic_error_body(status: status_pb2.Status) -> dict[str, Any]:
    http = anthropic_status(status)
    kind = _TYPE_BY_STATUS.get(http, "invalid_request_error" if http < 500 else "api_error")
    return {"type": "error", "error": {"type": kind, "message": status.message}}


def anthropic_error_response(status: status_pb2.Status, headers: dict[str, str] | None = None) -> JSONResponse:
    """A complete error response, with Retry-After when the status carries RetryInfo."""
    return JSONResponse(
        anthropic_error_body(status),
        status_code=anthropic_status(status),
        headers={**error_headers(status), **(headers or {})},
    )


def anthropic_error_event(status: status_pb2.Status) -> bytes:
    """The payload of an `event: error` after the first byte, as compact JSON."""
    return wire_json.dumps(anthropic_error_body(status))
