"""Anthropic's errors — HTTP error answers and `error` stream events — as domain errors (PROVIDERS.md §3.7)."""

from __future__ import annotations

import re
from typing import Any

from server.errors import ContextLengthExceededError, InvalidArgumentError, TollgateError, UpstreamError
from server.providers.redact import sanitized

# Statuses worth another attempt, on this channel later or on another one (529 is Anthropic's "overloaded").
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504, 529})
# The HTTP status each error type travels with; in a stream the real status line was a 200.
_STATUS_OF_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
# Key-like text: sk- keys, whatever follows x-api-key or Bearer, and any long opaque token.
_CONTEXT = re.compile(r"prompt is too long|context (?:window|length|limit)", re.IGNORECASE)
_ERROR_TYPE = re.compile(r"[a-z_]{1,40}")


def error_from_anthropic(status: int, body: dict[str, Any] | None, retry_after: float | None) -> TollgateError:
    """The domain error for an Anthropic HTTP error answer.

    Only a 400 is the client's doing and keeps the upstream's words (sanitised, capped); every other
    status is the channel's trouble and gets Tollgate's own generic wording, naming no key or host.
    """
    if status == 400:
        return _invalid_request(_upstream_message(body))
    if status == 413:
        return InvalidArgumentError("the request is too large for the upstream model", reason="request_too_large")
    if status in (401, 403):
        # The key is the channel's, not the client's: an operator problem, never a client-facing auth error.
        return UpstreamError(
            f"the upstream refused this channel's credentials ({status})", retryable=False, upstream_status=status
        )
    if status == 404:
        return UpstreamError(
            "the upstream does not know the model this channel maps to (404)", retryable=False, upstream_status=404
        )
    if status == 429:
        return UpstreamError(
            "the upstream rate-limited this channel", retryable=True, upstream_status=429, retry_after=retry_after
        )
    if status in RETRYABLE_STATUSES:
        return UpstreamError(
            f"the upstream failed ({status})", retryable=True, upstream_status=status, retry_after=retry_after
        )
    return UpstreamError(f"the upstream refused the call ({status})", retryable=False, upstream_status=status)


def error_from_stream_event(data: dict[str, Any]) -> UpstreamError:
    """The domain error for an `event: error` that arrived after a 200; only its type is trusted."""
    error = data.get("error")
    kind = error.get("type") if isinstance(error, dict) else None
    kind = kind if isinstance(kind, str) and _ERROR_TYPE.fullmatch(kind) else "unknown_error"
    status = _STATUS_OF_TYPE.get(kind, 0)
    return UpstreamError(
        f"the upstream failed mid-stream ({kind})", retryable=status in RETRYABLE_STATUSES, upstream_status=status
    )


def _upstream_message(body: dict[str, Any] | None) -> str:
    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return sanitized(message.strip()) if isinstance(message, str) else ""


def _invalid_request(message: str) -> InvalidArgumentError:
    if _CONTEXT.search(message):
        return ContextLengthExceededError(message, param="messages")
    return InvalidArgumentError(message or "the upstream model refused the request as invalid")
