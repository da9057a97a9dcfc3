"""Identifiers: a kind prefix plus a time-ordered random part, so ids sort by creation."""

from __future__ import annotations

import secrets
import threading
import time

_RANDOM_BITS = 72
_DIGITS = 24  # 120 bits, five per character
# Crockford's base32 in lower case: its characters are in ASCII order, so text order is numeric order.
_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_lock = threading.Lock()
_last = 0


def new_id(prefix: str) -> str:
    """E.g. `tok_01jd…`: 48 bits of milliseconds then 72 random bits, in Crockford base32.

    Monotonic within a process (like a monotonic ULID): an id made in the same millisecond as the
    previous one is that one plus one, so ids always sort in creation order.
    """
    global _last
    candidate = (time.time_ns() // 1_000_000) << _RANDOM_BITS | secrets.randbits(_RANDOM_BITS)
    with _lock:
        _last = candidate if candidate > _last else _last + 1
        value = _last
    digits = [_ALPHABET[(value >> shift) & 31] for shift in range(5 * (_DIGITS - 1), -1, -5)]
    return f"{prefix}_{''.join(digits)}"
