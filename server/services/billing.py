"""BillingService: the caller's balance, usage logs, usage totals, ledger entries and prices."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from tollgate.v1 import billing_pb2, billing_pb2_grpc

from server.access import Role
from server.domain.accounts import Accounts
from server.domain.billing import Billing
from server.domain.money import MICROS_PER_USD, format_usd
from server.domain.pricing import Price
from server.domain.records import ApiToken, UsageRecord
from server.domain.tokens import Tokens
from server.errors import InvalidArgumentError, NotFoundError, PermissionDeniedError
from server.interceptors import current_principal
from server.services.convert import account_message, from_timestamp, ledger_entry_message, timestamp

Context = grpc.aio.ServicerContext[Any, Any]
_GROUPS = {
    billing_pb2.USAGE_GROUPING_UNSPECIFIED: "day",
    billing_pb2.USAGE_GROUPING_DAY: "day",
    billing_pb2.USAGE_GROUPING_MODEL: "model",
    billing_pb2.USAGE_GROUPING_TOKEN: "token",
    billing_pb2.USAGE_GROUPING_DAY_AND_MODEL: "day_and_model",
}
DEFAULT_SUMMARY_DAYS = 30


def usage_message(row: UsageRecord) -> billing_pb2.UsageLog:
    return billing_pb2.UsageLog(
        id=row.id,
        request_id=row.request_id,
        create_time=timestamp(row.created_at),
        token_id=row.token_id,
        token_name=row.token_name,
        requested_model=row.requested_model,
        served_model=row.served_model,
        channel=row.channel,
        stream=row.stream,
        input_tokens=row.input_tokens,
        cached_tokens=row.cached_tokens,
        cache_write_tokens=row.cache_write_tokens,
        output_tokens=row.output_tokens,
        reasoning_tokens=row.reasoning_tokens,
        cost_micros=row.cost_micros,
        cost_usd=format_usd(row.cost_micros),
        estimated=row.estimated,
        status=row.status,
        latency_ms=row.latency_ms,
        time_to_first_token_ms=row.time_to_first_token_ms or 0,
        client_ip=row.client_ip,
    )


def price_message(price: Price) -> billing_pb2.Price:
    def text(value: Any) -> str:
        return format(value.normalize(), "f")

    return billing_pb2.Price(
        input_per_mtok=text(price.input),
        cached_input_per_mtok=text(price.cached_input),
        cache_write_per_mtok=text(price.cache_write),
        output_per_mtok=text(price.output),
    )


class BillingServicer(billing_pb2_grpc.BillingServiceServicer):
    """Thin adapter over the account's money and its usage."""

    def __init__(self, accounts: Accounts, tokens: Tokens, billing: Billing, context_windows: dict[str, int]) -> None:
        self._accounts = accounts
        self._tokens = tokens
        self._billing = billing
        self._context_windows = context_windows

    async def GetBalance(
        self, request: billing_pb2.GetBalanceRequest, context: Context
    ) -> billing_pb2.GetBalanceResponse:
        account = await self._accounts.get(current_principal().account_id)
        return billing_pb2.GetBalanceResponse(account=account_message(account))

    async def ListUsageLogs(
        self, request: billing_pb2.ListUsageLogsRequest, context: Context
    ) -> billing_pb2.ListUsageLogsResponse:
        filters: dict[str, Any] = {"token_id": request.token_id, "model": request.model, "status": request.status}
        if request.HasField("start_time"):
            filters["start"] = from_timestamp(request.start_time)
        if request.HasField("end_time"):
            filters["end"] = from_timestamp(request.end_time)
        account_id = await self._account_asked(request.account_id)
        page = await self._billing.usage(account_id, filters, request.page_size, request.page_token)
        return billing_pb2.ListUsageLogsResponse(
            logs=[usage_message(row) for row in page.items], next_page_token=page.next_page_token
        )

    async def ListLedgerEntries(
        self, request: billing_pb2.ListLedgerEntriesRequest, context: Context
    ) -> billing_pb2.ListLedgerEntriesResponse:
        account_id = await self._account_asked(request.account_id)
        page = await self._accounts.ledger(account_id, request.page_size, request.page_token)
        return billing_pb2.ListLedgerEntriesResponse(
            entries=[ledger_entry_message(entry) for entry in page.items], next_page_token=page.next_page_token
        )

    async def _account_asked(self, asked: str) -> str:
        """The account a call reads: the operator's must name one; a session reads its own, and no other."""
        principal = current_principal()
        if principal.role is not Role.OPERATOR:
            if asked and asked != principal.account_id:
                raise NotFoundError("no such account", param="account_id")
            return principal.account_id
        if not asked:
            raise InvalidArgumentError("account_id must name the account to read", param="account_id")
        return (await self._accounts.get(asked)).id

    async def GetUsageSummary(
        self, request: billing_pb2.GetUsageSummaryRequest, context: Context
    ) -> billing_pb2.GetUsageSummaryResponse:
        group = _GROUPS.get(request.group_by)
        if group is None:
            raise InvalidArgumentError("unknown group_by", param="group_by")
        end = from_timestamp(request.end_time) if request.HasField("end_time") else datetime.now(UTC)
        start = (
            from_timestamp(request.start_time)
            if request.HasField("start_time")
            else end - timedelta(days=DEFAULT_SUMMARY_DAYS)
        )
        account_id = await self._account_asked(request.account_id)
        rows = await self._billing.totals(account_id, group, start.date(), end.date())
        buckets = [
            billing_pb2.UsageBucket(
                day=row.get("day", ""),
                model=row.get("model", ""),
                token_id=row.get("token_id", ""),
                requests=row["requests"],
                input_tokens=row["input_tokens"],
                cached_tokens=row["cached_tokens"],
                cache_write_tokens=row["cache_write_tokens"],
                output_tokens=row["output_tokens"],
                cost_micros=row["cost_micros"],
                cost_usd=format_usd(row["cost_micros"]),
            )
            for row in rows
        ]
        return billing_pb2.GetUsageSummaryResponse(buckets=buckets)

    async def ListPrices(
        self, request: billing_pb2.ListPricesRequest, context: Context
    ) -> billing_pb2.ListPricesResponse:
        rows, site, account = await self._billing.price_list(current_principal().account_id)
        prices = [
            billing_pb2.ModelPrice(
                model=model_id,
                context_window=self._context_windows.get(model_id, 0),
                upstream=price_message(upstream),
                discounted=price_message(discounted),
            )
            for model_id, upstream, discounted in rows
        ]
        return billing_pb2.ListPricesResponse(
            prices=prices, site_discount=format(site, "f"), account_discount=format(account, "f")
        )

    async def GetSubscription(
        self, request: billing_pb2.GetSubscriptionRequest, context: Context
    ) -> billing_pb2.GetSubscriptionResponse:
        token = await self._calling_token()
        account = await self._accounts.get(token.account_id)
        left = account.available_micros
        if token.spend_cap_micros:
            left = min(left, max(0, token.spend_cap_micros - token.spent_micros))
        limit = (token.spent_micros + left) / MICROS_PER_USD
        return billing_pb2.GetSubscriptionResponse(
            object="billing_subscription",
            has_payment_method=True,
            hard_limit_usd=limit,
            soft_limit_usd=limit,
            system_hard_limit_usd=limit,
            access_until=int(token.expires_at.timestamp()) if token.expires_at else 0,
        )

    async def GetDashboardUsage(
        self, request: billing_pb2.GetDashboardUsageRequest, context: Context
    ) -> billing_pb2.GetDashboardUsageResponse:
        cents = (await self._calling_token()).spent_micros / (MICROS_PER_USD / 100)
        return billing_pb2.GetDashboardUsageResponse(object="list", total_usage=cents)

    async def _calling_token(self) -> ApiToken:
        """The caller's token as stored now (authentication may have used a cached copy)."""
        token = current_principal().token
        if token is None:  # the access table admits only API keys here
            raise PermissionDeniedError("this call needs an API key", reason="wrong_credential_kind")
        return await self._tokens.get(token.account_id, token.id)
