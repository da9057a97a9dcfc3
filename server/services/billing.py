"""BillingService: the caller's balance now; usage logs, summaries and prices land with billing."""

from __future__ import annotations

from typing import Any

import grpc
from tollgate.v1 import billing_pb2, billing_pb2_grpc

from server.domain.accounts import Accounts
from server.errors import UnimplementedError
from server.interceptors import current_principal
from server.services.convert import account_message

Context = grpc.aio.ServicerContext[Any, Any]


class BillingServicer(billing_pb2_grpc.BillingServiceServicer):
    """Thin adapter over the account's money."""

    def __init__(self, accounts: Accounts) -> None:
        self._accounts = accounts

    async def GetBalance(
        self, request: billing_pb2.GetBalanceRequest, context: Context
    ) -> billing_pb2.GetBalanceResponse:
        account = await self._accounts.get(current_principal().account_id)
        return billing_pb2.GetBalanceResponse(account=account_message(account))

    async def ListUsageLogs(
        self, request: billing_pb2.ListUsageLogsRequest, context: Context
    ) -> billing_pb2.ListUsageLogsResponse:
        raise UnimplementedError("usage logs are not recorded yet")

    async def GetUsageSummary(
        self, request: billing_pb2.GetUsageSummaryRequest, context: Context
    ) -> billing_pb2.GetUsageSummaryResponse:
        raise UnimplementedError("usage summaries are not recorded yet")

    async def ListPrices(
        self, request: billing_pb2.ListPricesRequest, context: Context
    ) -> billing_pb2.ListPricesResponse:
        raise UnimplementedError("prices are not configured yet")
