"""An OpenAI-compatible upstream's HTTP error as the domain error that fits it."""

from __future__ import annotations

from typing import Any

from server.errors import ContextLengthExceededError, InvalidArgumentError, TollgateError, UpstreamError
from server.providers.redact import sanitized


def error_from_openai(channel: str, status: int, body: Any, retry_after: float | None) -> TollgateError:
    """Client mistakes keep the upstream's (sanitised) words; the channel's own trouble stays generic."""
    error = body.get("error") if isinstance(body, dict) else None
    details = error if isinstance(error, dict) else {}
    message = sanitized(details.get("message"))
    code = details.get("code")
    if status in (400, 422):
        if code == "context_length_exceeded" or "context length" in message.lower():
            return ContextLengthExceededError(message or "the prompt is too long for the model", param="messages")
        return InvalidArgumentError(message or "the upstream refused the request")
    if status == 413:
        return InvalidArgumentError("the request is too large for the upstream", reason="request_too_large")
    if status == 429:
        return UpstreamError(
            f"channel {channel} is rate limited", retryable=True, upstream_status=status, retry_after=retry_after
        )
    if status >= 500:
        return UpstreamError(f"channel {channel} failed ({status})", retryable=True, upstream_status=status)
    # 401/403/402/404: the channel's key, credit or model mapping is wrong; the client did nothing wrong.
    return UpstreamError(f"channel {channel} refused the call ({status})", retryable=False, upstream_status=status)
