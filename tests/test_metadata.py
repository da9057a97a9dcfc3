"""Outgoing call options: the header allow-list, request ids, Grpc-Timeout and a log-safe repr."""

from __future__ import annotations

import pytest
from starlette.datastructures import Headers

from gateway.metadata import MetadataError, call_options, parse_grpc_timeout


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("10S", 10.0),
        ("500m", 0.5),
        ("2M", 120.0),
        ("1H", 3600.0),
        ("250u", 0.00025),
        ("7n", 7e-9),
        ("99999999S", 99999999.0),
    ],
)
def test_parse_grpc_timeout(value: str, seconds: float) -> None:
    assert parse_grpc_timeout(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["", "10", "S", "10s", "1.5S", "-1S", "123456789S", "10 S"])
def test_invalid_grpc_timeout(value: str) -> None:
    with pytest.raises(MetadataError):
        parse_grpc_timeout(value)


def test_only_allow_listed_headers_are_forwarded_and_secrets_stay_out_of_repr() -> None:
    headers = Headers(
        raw=[
            (b"authorization", b"Bearer sk-secret"),
            (b"x-api-key", b"key-secret"),
            (b"idempotency-key", b"idem"),
            (b"x-request-id", b"req-7"),
            (b"cookie", b"c=1"),
            (b"x-forwarded-for", b"10.0.0.1"),
            (b"grpc-timeout", b"3S"),
        ]
    )
    options = call_options(headers, "192.0.2.1", default_timeout=60.0)
    assert options.metadata == (
        ("authorization", "Bearer sk-secret"),
        ("x-api-key", "key-secret"),
        ("idempotency-key", "idem"),
        ("x-request-id", "req-7"),
        ("x-forwarded-for", "192.0.2.1"),
    )
    assert (options.timeout, options.request_id) == (3.0, "req-7")
    assert "secret" not in repr(options)


def test_defaults() -> None:
    options = call_options(Headers(), None, default_timeout=None)
    assert options.timeout is None
    assert options.metadata == (("x-request-id", options.request_id),)
    assert len(options.request_id) == 32


def test_non_ascii_credentials_are_rejected() -> None:
    with pytest.raises(MetadataError, match="header 'authorization' is not printable ASCII"):
        call_options(Headers(raw=[(b"authorization", "Bearer é".encode("latin-1"))]), None, default_timeout=1.0)
