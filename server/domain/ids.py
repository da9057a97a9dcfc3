"""Identifiers: a kind prefix plus a time-ordered random part, so ids sort by creation."""

from __future__ import annotations

import base64
import secrets
import time


def new_id(prefix: str) -> str:
    """E.g. `tok_01JD…`: 48 bits of milliseconds then 72 random bits, base32 without padding, lower case."""
    raw = (time.time_ns() // 1_000_000).to_bytes(6, "big") + secrets.token_bytes(9)
    return f"{prefix}_{base64.b32encode(raw).decode('ascii').rstrip('=').lower()}"
