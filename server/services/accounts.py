"""AccountService: the operator's accounts, credits and debits, and the console's login and logout."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from tollgate.v1 import account_pb2, account_pb2_grpc

from server.domain.accounts import Accounts
from server.domain.records import Account, LedgerEntry
from server.domain.sessions import Sessions
from server.interceptors import current_client_ip, current_principal, metadata_value
from server.services.convert import Writable, account_message, ledger_entry_message, masked_changes, timestamp

Context = grpc.aio.ServicerContext[Any, Any]

_WRITABLE: Writable[account_pb2.Account] = {
    "discount": ("discount", lambda account: account.discount),
    "disabled": ("disabled", lambda account: account.disabled),
}


class AccountServicer(account_pb2_grpc.AccountServiceServicer):
    """Thin adapter over Accounts and Sessions."""

    def __init__(self, accounts: Accounts, sessions: Sessions) -> None:
        self._accounts = accounts
        self._sessions = sessions

    async def CreateAccount(
        self, request: account_pb2.CreateAccountRequest, context: Context
    ) -> account_pb2.CreateAccountResponse:
        account = await self._accounts.create(request.name, request.password, request.discount)
        return account_pb2.CreateAccountResponse(account=account_message(account))

    async def ListAccounts(
        self, request: account_pb2.ListAccountsRequest, context: Context
    ) -> account_pb2.ListAccountsResponse:
        page = await self._accounts.list(request.page_size, request.page_token)
        return account_pb2.ListAccountsResponse(
            accounts=[account_message(account) for account in page.items], next_page_token=page.next_page_token
        )

    async def GetAccount(
        self, request: account_pb2.GetAccountRequest, context: Context
    ) -> account_pb2.GetAccountResponse:
        return account_pb2.GetAccountResponse(account=account_message(await self._accounts.get(request.account_id)))

    async def DisableAccount(
        self, request: account_pb2.DisableAccountRequest, context: Context
    ) -> account_pb2.DisableAccountResponse:
        account = await self._accounts.disable(request.account_id)
        return account_pb2.DisableAccountResponse(account=account_message(account))

    async def UpdateAccount(
        self, request: account_pb2.UpdateAccountRequest, context: Context
    ) -> account_pb2.UpdateAccountResponse:
        changes = masked_changes(request.account, request.update_mask, _WRITABLE, "account.")
        account = await self._accounts.update(request.account_id, changes)
        return account_pb2.UpdateAccountResponse(account=account_message(account))

    async def SetAccountPassword(
        self, request: account_pb2.SetAccountPasswordRequest, context: Context
    ) -> account_pb2.SetAccountPasswordResponse:
        ended = await self._sessions.reset_password(request.account_id, request.password)
        return account_pb2.SetAccountPasswordResponse(ended_sessions=ended)

    async def CreditAccount(
        self, request: account_pb2.CreditAccountRequest, context: Context
    ) -> account_pb2.CreditAccountResponse:
        entry, account = await self._move(self._accounts.credit, request, context)
        return account_pb2.CreditAccountResponse(entry=entry, account=account)

    async def DebitAccount(
        self, request: account_pb2.DebitAccountRequest, context: Context
    ) -> account_pb2.DebitAccountResponse:
        entry, account = await self._move(self._accounts.debit, request, context)
        return account_pb2.DebitAccountResponse(entry=entry, account=account)

    @staticmethod
    async def _move(
        move: Callable[..., Awaitable[tuple[LedgerEntry, Account]]],
        request: account_pb2.CreditAccountRequest | account_pb2.DebitAccountRequest,
        context: Context,
    ) -> tuple[account_pb2.LedgerEntry, account_pb2.Account]:
        """A credit or a debit (`move`), keyed by the call's `idempotency-key` metadata."""
        entry, account = await move(
            request.account_id,
            request.amount_usd,
            request.reason,
            idempotency_key=metadata_value(context, "idempotency-key"),
            actor=current_principal().role.value,
        )
        return ledger_entry_message(entry), account_message(account)

    async def CreateSession(
        self, request: account_pb2.CreateSessionRequest, context: Context
    ) -> account_pb2.CreateSessionResponse:
        token, session = await self._sessions.login(request.name, request.password, current_client_ip())
        return account_pb2.CreateSessionResponse(
            session_token=token, expire_time=timestamp(session.expires_at), account_id=session.account_id
        )

    async def ChangePassword(
        self, request: account_pb2.ChangePasswordRequest, context: Context
    ) -> account_pb2.ChangePasswordResponse:
        principal = current_principal()
        ended = await self._sessions.change_password(
            principal.account_id,
            principal.session_hash,
            request.current_password,
            request.new_password,
            current_client_ip(),
        )
        return account_pb2.ChangePasswordResponse(ended_sessions=ended)

    async def DeleteSession(
        self, request: account_pb2.DeleteSessionRequest, context: Context
    ) -> account_pb2.DeleteSessionResponse:
        await self._sessions.logout(current_principal().session_hash)
        return account_pb2.DeleteSessionResponse()
