"""Upstream error messages made fit to show a client."""

from __future__ import annotations

import re

_SECRET = re.compile(
    r"sk-[\w-]+|x-api-key(?:\s*[:=]?\s*\S+)?|bearer\s+\S+|https?://\S+|[A-Za-z0-9_\-]{32,}", re.IGNORECASE
)
MAX_MESSAGE = 300


def sanitized(message: object) -> str:
    """Key-like tokens, bearer values and URLs redacted, length capped; "" for anything but a string."""
    if not isinstance(message, str):
        return ""
    cleaned = _SECRET.sub("[redacted]", message)
    return cleaned if len(cleaned) <= MAX_MESSAGE else cleaned[: MAX_MESSAGE - 1] + "…"
