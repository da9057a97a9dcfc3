"""OpenAI's error envelope `{"error": {"message", "type", "param", "code"}}` from a google.rpc.Status."""

from __future__ import annotations

from typing import Any

from google.rpc import status_pb2
from starlette.responses import JSONResponse

from gateway.errors import error_headers, error_info, status_http_status
from server import wire_json

_TYPE_BY_HTTP_STATUS = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    402: "insufficient_quota",
    403: "invalid_request_error",
    404: "invalid_request_error",
    408: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def openai_error_body(status: status_pb2.Status) -> dict[str, Any]:
    """The envelope: `code` is the ErrorInfo reason, `type` and `param` come from its metadata."""
    info = error_info(status)
    http = status_http_status(status)
    default_type = _TYPE_BY_HTTP_STATUS.get(http, "server_error")
    return {
        "error": {
            "message": status.message,
            "type": info.metadata.get("type", default_type) if info else default_type,
            "param": info.metadata.get("param") if info else None,
            "code": info.reason if info else None,
        }
    }


def openai_error_response(status: status_pb2.Status, headers: dict[str, str] | None = None) -> JSONResponse:
    """A complete error response, with Retry-After when the status carries RetryInfo."""
    return JSONResponse(
        openai_error_body(status),
        status_code=status_http_status(status),
        headers={**error_headers(status), **(headers or {})},
    )


def openai_error_event(status: status_pb2.Status) -> bytes:
    """The in-band SSE payload of an error after the first byte: `{"error": {…}}` as compact JSON."""
    return wire_json.dumps(openai_error_body(status))
