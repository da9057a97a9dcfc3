"""Outgoing gRPC call options (metadata allow-list, request id, deadline) from an HTTP request."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

FORWARDED_HEADERS = ("authorization", "x-api-key", "idempotency-key")
REQUEST_ID_HEADER = "x-request-id"
TIMEOUT_HEADER = "grpc-timeout"
_SECRET_KEYS = frozenset({"authorization", "x-api-key"})
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")
_TIMEOUT = re.compile(r"([0-9]{1,8})([HMSmun])")
_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


class MetadataError(ValueError):
    """A header that cannot be forwarded (INVALID_ARGUMENT)."""


@dataclass(frozen=True)
class CallOptions:
    """What an outgoing call carries. The repr hides credential values so it is safe to log."""

    metadata: tuple[tuple[str, str], ...]
    timeout: float | None
    request_id: str

    def __repr__(self) -> str:
        shown = [(key, "<redacted>" if key in _SECRET_KEYS else value) for key, value in self.metadata]
        return f"CallOptions(metadata={shown!r}, timeout={self.timeout!r}, request_id={self.request_id!r})"


def call_options(headers: Mapping[str, str], client_host: str | None, *, default_timeout: float | None) -> CallOptions:
    """Forward only the allow-listed headers; keep or create `x-request-id`; set the deadline.

    `headers` must be case-insensitive (starlette's `Headers`). A `Grpc-Timeout` header overrides
    `default_timeout` as in grpc-gateway. The client address becomes `x-forwarded-for`; an incoming
    X-Forwarded-For is not trusted (put the proxy-header handling in the ASGI server instead).
    Raises MetadataError on an invalid Grpc-Timeout or a header value gRPC cannot carry.
    """
    metadata: list[tuple[str, str]] = []
    for key in FORWARDED_HEADERS:
        value = headers.get(key)
        if value is not None:
            if not _PRINTABLE_ASCII.fullmatch(value):
                raise MetadataError(f"header {key!r} is not printable ASCII")
            metadata.append((key, value))
    request_id = headers.get(REQUEST_ID_HEADER, "")
    if not _REQUEST_ID.fullmatch(request_id):
        request_id = uuid.uuid4().hex
    metadata.append((REQUEST_ID_HEADER, request_id))
    if client_host:
        metadata.append(("x-forwarded-for", client_host))
    timeout_header = headers.get(TIMEOUT_HEADER)
    timeout = default_timeout if timeout_header is None else parse_grpc_timeout(timeout_header)
    return CallOptions(tuple(metadata), timeout, request_id)


def parse_grpc_timeout(value: str) -> float:
    """Seconds from a gRPC `TimeoutValue TimeoutUnit` string such as `10S` or `500m`."""
    found = _TIMEOUT.fullmatch(value.strip())
    if found is None:
        raise MetadataError(f"invalid Grpc-Timeout {value!r}")
    return int(found.group(1)) * _TIMEOUT_UNITS[found.group(2)]
