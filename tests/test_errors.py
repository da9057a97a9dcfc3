"""gRPC status → HTTP table, google.rpc.Status parsing from trailers and its JSON form."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2

from gateway.errors import (
    STATUS_DETAILS_KEY,
    error_headers,
    http_status,
    retry_after_seconds,
    status_from_rpc_error,
    status_to_json,
)


def packed(message: object) -> any_pb2.Any:
    detail = any_pb2.Any()
    detail.Pack(message)  # type: ignore[arg-type]
    return detail


def test_table_by_enum_and_number() -> None:
    assert http_status(grpc.StatusCode.RESOURCE_EXHAUSTED) == 429
    assert http_status(8) == 429
    assert http_status(grpc.StatusCode.OK) == 200
    assert http_status(99) == 500


def test_status_from_rpc_error_reads_the_details_trailer() -> None:
    status = status_pb2.Status(code=7, message="no", details=[packed(error_details_pb2.ErrorInfo(reason="R"))])
    error = grpc.aio.AioRpcError(
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.aio.Metadata(),
        grpc.aio.Metadata((STATUS_DETAILS_KEY, status.SerializeToString())),
        details="no",
    )
    assert status_from_rpc_error(error) == status


def test_status_without_or_with_mismatched_or_broken_trailer() -> None:
    mismatched = status_pb2.Status(code=5, message="other").SerializeToString()
    for trailer in ((), ((STATUS_DETAILS_KEY, mismatched),), ((STATUS_DETAILS_KEY, b"\xff\xff"),)):
        error = grpc.aio.AioRpcError(grpc.StatusCode.INTERNAL, grpc.aio.Metadata(), grpc.aio.Metadata(*trailer), "x")
        assert status_from_rpc_error(error) == status_pb2.Status(code=13, message="x")


def test_json_and_retry_after() -> None:
    delay = duration_pb2.Duration(seconds=3, nanos=1)
    unknown = any_pb2.Any(type_url="type.googleapis.com/example.Unknown", value=b"\x01")
    status = status_pb2.Status(
        code=8,
        message="slow",
        details=[packed(error_details_pb2.RetryInfo(retry_delay=delay)), unknown],
    )
    assert status_to_json(status) == {
        "code": 8,
        "message": "slow",
        "details": [
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retry_delay": "3.000000001s"},
            {"@type": "type.googleapis.com/example.Unknown", "value": "AQ=="},
        ],
    }
    assert retry_after_seconds(status) == 4
    assert error_headers(status) == {"retry-after": "4"}
    assert error_headers(status_pb2.Status(code=8)) == {}
