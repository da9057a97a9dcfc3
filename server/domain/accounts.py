"""Accounts: opening them, changing their discount, disabling them, and crediting or debiting balances once per key."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from server.domain.clock import utcnow
from server.domain.ids import new_id
from server.domain.money import format_usd, parse_multiplier, parse_usd
from server.domain.paging import Page, fetch_page
from server.domain.passwords import Passwords
from server.domain.records import Account, LedgerEntry, Movement
from server.domain.token_cache import TokenCache
from server.errors import AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError
from server.storage.base import AccountStore

OPERATOR_NAME = "operator"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
_MAX_REASON = 500


class IdempotencyKeyReusedError(InvalidArgumentError):
    """The Idempotency-Key was already used with a different request."""

    reason = "idempotency_key_reused"


class InsufficientBalanceError(FailedPreconditionError):
    """A debit takes more than the account has available (its balance less what running calls hold)."""

    reason = "insufficient_balance"


class Accounts:
    """The operator's view of accounts."""

    def __init__(self, store: AccountStore, passwords: Passwords, cache: TokenCache) -> None:
        self._store = store
        self._passwords = passwords
        self._cache = cache

    async def create(self, name: str, password: str, discount: str) -> Account:
        if not _NAME.match(name) or name.lower() == OPERATOR_NAME:
            raise InvalidArgumentError("name must be 1-64 letters, digits or _.@- (and not 'operator')", param="name")
        multiplier = parse_multiplier(discount, param="discount")
        password_hash = await self._passwords.hash(password)
        account = Account(new_id("acc"), name, False, 0, 0, str(multiplier), utcnow())
        if not await self._store.insert_account(account, password_hash):
            raise AlreadyExistsError(f"an account named {name!r} exists", param="name")
        return account

    async def get(self, account_id: str) -> Account:
        account = await self._store.get_account(account_id)
        if account is None:
            raise NotFoundError("no such account", param="account_id")
        return account

    async def list(self, size: int, token: str) -> Page[Account]:
        return await fetch_page(self._store.list_accounts, size, token)

    async def ledger(self, account_id: str, size: int, page_token: str) -> Page[LedgerEntry]:
        """The account's credits and debits, newest first, one page at a time."""
        return await fetch_page(
            lambda before_id, limit: self._store.list_ledger_entries(account_id, before_id, limit), size, page_token
        )

    async def update(self, account_id: str, changes: Mapping[str, Any]) -> Account:
        """Sets `discount` or `disabled`. A request's price is fixed by its hold, so one already running keeps the
        discount it started with; the account's keys are looked up again at once when `disabled` changes."""
        if "discount" in changes:
            changes = {**changes, "discount": str(parse_multiplier(changes["discount"], param="discount"))}
        account = await self._store.update_account(account_id, changes)
        if account is None:
            raise NotFoundError("no such account", param="account_id")
        if "disabled" in changes:
            await self._cache.revoke_account(account_id)
        return account

    async def disable(self, account_id: str) -> Account:
        return await self.update(account_id, {"disabled": True})

    async def credit(
        self, account_id: str, amount_usd: str, reason: str, idempotency_key: str, actor: str
    ) -> tuple[LedgerEntry, Account]:
        """Adds money once per key: a replay returns the first result; another body under the key is refused."""
        return await self._move(account_id, _amount(amount_usd), reason, idempotency_key, actor)

    async def debit(
        self, account_id: str, amount_usd: str, reason: str, idempotency_key: str, actor: str
    ) -> tuple[LedgerEntry, Account]:
        """Takes money back once per key, at most what is available: money held by running calls stays theirs."""
        return await self._move(account_id, -_amount(amount_usd), reason, idempotency_key, actor)

    async def _move(
        self, account_id: str, micros: int, reason: str, idempotency_key: str, actor: str
    ) -> tuple[LedgerEntry, Account]:
        if not _IDEMPOTENCY_KEY.match(idempotency_key):
            raise InvalidArgumentError(
                "an Idempotency-Key header (1-255 printable characters) is required", param="idempotency_key"
            )
        if len(reason) > _MAX_REASON:
            raise InvalidArgumentError(f"reason must have at most {_MAX_REASON} characters", param="reason")
        fingerprint = hashlib.sha256(f"{account_id}\n{micros}\n{reason}".encode()).hexdigest()
        movement = Movement(new_id("led"), account_id, micros, actor, reason, idempotency_key, fingerprint, utcnow())
        moved = await self._store.apply_movement(movement)
        if moved is None:
            raise NotFoundError("no such account", param="account_id")
        if moved.fingerprint != fingerprint:
            raise IdempotencyKeyReusedError(f"this Idempotency-Key was used for a different {movement.kind}")
        if moved.entry is None:
            raise InsufficientBalanceError(
                f"the account has {format_usd(moved.available_micros)} USD available (its balance less what running"
                f" calls hold): a debit takes at most that"
            )
        return moved.entry, await self.get(account_id)


def _amount(amount_usd: str) -> int:
    micros = parse_usd(amount_usd, param="amount_usd")
    if micros == 0:
        raise InvalidArgumentError("amount_usd must be more than zero", param="amount_usd")
    return micros
