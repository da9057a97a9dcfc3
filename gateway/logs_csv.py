"""`GET /api/v1/logs:export`: the usage logs of `GET /api/v1/logs`, every page, streamed as CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterable

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from tollgate.v1 import billing_pb2, billing_pb2_grpc

from gateway.codec import CodecError, decode_request
from gateway.errors import make_status, status_from_rpc_error
from gateway.metadata import REQUEST_ID_HEADER, CallOptions, MetadataError, call_options
from gateway.routing import Route, RouteTable
from gateway.transcoder import status_response

EXPORT_PAGE_SIZE = 500
COLUMNS = (
    "time",
    "request_id",
    "token_id",
    "token_name",
    "requested_model",
    "served_model",
    "channel",
    "stream",
    "input_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost_micros",
    "cost_usd",
    "estimated",
    "status",
    "latency_ms",
    "time_to_first_token_ms",
    "client_ip",
)
# A spreadsheet evaluates a cell that starts with one of these as a formula (CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _list_logs_route() -> Route:
    service = billing_pb2.DESCRIPTOR.services_by_name["BillingService"]
    match = RouteTable.from_services([service]).match("GET", "/api/v1/logs")
    assert match is not None, "BillingService.ListUsageLogs lost its GET /api/v1/logs binding"
    return match.route


def safe_cell(text: str) -> str:
    """A user-controlled string that a spreadsheet shows as text, never runs as a formula."""
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _time(stamp: Timestamp) -> str:
    return stamp.ToDatetime().isoformat(timespec="milliseconds") + "Z"


def log_row(log: billing_pb2.UsageLog) -> list[str | int]:
    """One CSV row, in COLUMNS order."""
    return [
        _time(log.create_time),
        log.request_id,
        log.token_id,
        safe_cell(log.token_name),
        safe_cell(log.requested_model),
        safe_cell(log.served_model),
        safe_cell(log.channel),
        str(log.stream).lower(),
        log.input_tokens,
        log.cached_tokens,
        log.cache_write_tokens,
        log.output_tokens,
        log.reasoning_tokens,
        log.cost_micros,
        log.cost_usd,
        str(log.estimated).lower(),
        safe_cell(log.status),
        log.latency_ms,
        log.time_to_first_token_ms,
        log.client_ip,
    ]


def _csv_lines(rows: Iterable[list[str | int]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue().encode()


class LogsExport:
    """Pages through BillingService.ListUsageLogs with the caller's session and streams each page as CSV rows.

    The first page is fetched before the response starts, so a bad session or filter is an ordinary
    google.rpc.Status error; a failure on a later page ends the download early (it shows as truncated).
    """

    def __init__(self, channel: grpc.aio.Channel, *, request_timeout: float, page_size: int = EXPORT_PAGE_SIZE) -> None:
        self._list = billing_pb2_grpc.BillingServiceStub(channel).ListUsageLogs
        self._route = _list_logs_route()
        self._timeout = request_timeout
        self._page_size = page_size

    async def serve(self, request: Request) -> Response:
        client_host = request.client.host if request.client else None
        try:
            options = call_options(request.headers, client_host, default_timeout=self._timeout)
            query = request.scope.get("query_string", b"").decode("latin-1")
            filters = decode_request(self._route, {}, query, b"")
        except (MetadataError, CodecError) as exc:
            return status_response(make_status(grpc.StatusCode.INVALID_ARGUMENT, str(exc)))
        assert isinstance(filters, billing_pb2.ListUsageLogsRequest)
        filters.page_size, filters.page_token = self._page_size, ""
        headers = {REQUEST_ID_HEADER: options.request_id}
        try:
            first = await self._page(filters, options)
        except grpc.aio.AioRpcError as exc:
            return status_response(status_from_rpc_error(exc), headers)
        return StreamingResponse(
            self._body(filters, options, first),
            media_type="text/csv; charset=utf-8",
            headers=headers | {"content-disposition": 'attachment; filename="tollgate-logs.csv"'},
        )

    async def _page(
        self, filters: billing_pb2.ListUsageLogsRequest, options: CallOptions
    ) -> billing_pb2.ListUsageLogsResponse:
        return await self._list(filters, timeout=options.timeout, metadata=options.metadata)

    async def _body(
        self, filters: billing_pb2.ListUsageLogsRequest, options: CallOptions, page: billing_pb2.ListUsageLogsResponse
    ) -> AsyncIterator[bytes]:
        yield _csv_lines([list(COLUMNS)])
        while True:
            yield _csv_lines(log_row(log) for log in page.logs)
            if not page.next_page_token:
                return
            filters.page_token = page.next_page_token
            page = await self._page(filters, options)
