"""The storage seam: what the domain may ask of a database, one small Protocol per role."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

from server.domain.records import (
    Account,
    ApiToken,
    Credentials,
    Funds,
    Hold,
    LedgerEntry,
    Moved,
    Movement,
    Session,
    UsageRecord,
)


class Store(Protocol):
    """A database with versioned schema migrations and site-wide settings, and its roles."""

    @property
    def accounts(self) -> AccountStore: ...

    @property
    def sessions(self) -> SessionStore: ...

    @property
    def tokens(self) -> TokenStore: ...

    @property
    def ledger(self) -> LedgerStore: ...

    async def migrate(self) -> int:
        """Applies every pending migration in order, each in its own transaction; returns the schema version."""
        ...

    async def schema_version(self) -> int:
        """The version of the newest migration applied; 0 on an empty database."""
        ...

    async def get_setting(self, key: str) -> str | None:
        """A site-wide setting stored in the database, or None."""
        ...

    async def put_setting_if_absent(self, key: str, value: str) -> bool:
        """Stores a setting unless it exists; True if this call stored it (safe under concurrency)."""
        ...

    async def close(self) -> None:
        """Releases connections; the store is unusable afterwards."""
        ...


class AccountStore(Protocol):
    """Accounts, their credentials and credits."""

    async def insert_account(self, account: Account, password_hash: str) -> bool:
        """Stores a new account; False if the name is taken."""
        ...

    async def get_account(self, account_id: str) -> Account | None: ...

    async def list_accounts(self, after_id: str, limit: int) -> list[Account]:
        """Accounts with an id greater than `after_id`, in id order."""
        ...

    async def credentials(self, name: str) -> Credentials | None: ...

    async def set_password(
        self, account_id: str, password_hash: str, now: datetime, keep_session: str = ""
    ) -> int | None:
        """Sets the console password and ends the account's sessions but `keep_session` (a token hash), at once.

        Returns how many live sessions (unexpired at `now`) ended; None when no such account.
        """
        ...

    async def update_account(self, account_id: str, changes: Mapping[str, Any]) -> Account | None:
        """Sets `disabled` or `discount` (the keys of `changes`); None when no such account."""
        ...

    async def list_ledger_entries(self, account_id: str, before_id: str, limit: int) -> list[LedgerEntry]:
        """The account's credits and debits, newest first, older than `before_id` when it is set."""
        ...

    async def apply_movement(self, movement: Movement) -> Moved | None:
        """Records the credit or debit once per idempotency key, atomically with the balance change; a debit only
        if the account's available money (balance less holds) covers it. None if the account does not exist."""
        ...


class SessionStore(Protocol):
    """Console sessions."""

    async def insert_session(self, session: Session, created_at: datetime) -> None: ...

    async def find_session(self, token_hash: str, now: datetime) -> Session | None:
        """The unexpired session of an enabled account (or the operator's) with this token hash."""
        ...

    async def delete_session(self, token_hash: str) -> None: ...


class TokenStore(Protocol):
    """API tokens, always scoped by their account."""

    async def insert_token(self, token: ApiToken) -> None: ...

    async def get_token(self, account_id: str, token_id: str) -> ApiToken | None: ...

    async def list_tokens(self, account_id: str, after_id: str, limit: int) -> list[ApiToken]: ...

    async def update_token(self, account_id: str, token_id: str, changes: Mapping[str, Any]) -> ApiToken | None:
        """Sets the given TokenSettings fields; None if there is no such live token."""
        ...

    async def delete_token(self, account_id: str, token_id: str, now: datetime) -> bool: ...

    async def find_token_by_key_hash(self, key_hash: str) -> tuple[ApiToken, bool] | None:
        """The live token with this key hash and whether its account is disabled."""
        ...


class LedgerStore(Protocol):
    """Holds and settlements: the only writes that move money for calls."""

    async def account_discount(self, account_id: str) -> str | None:
        """The account's price multiplier, None for an unknown account."""
        ...

    async def place_hold(self, account_id: str, token_id: str, size: Callable[[Funds | None], Hold]) -> bool:
        """Reads what the account and token can spend, sizes the hold from it, and reserves that amount on both.

        `size` gets the funds (None for an unknown account or token) and raises to refuse, which writes nothing.
        What is reserved is the hold `size` returned last, and only while the funds still pay for it: `size` may
        be called more than once, and first with funds assumed ample, which the write then checks (PostgreSQL).
        False (nothing written) when the account is disabled or `size` returned more than the funds.
        """
        ...

    async def settle(self, hold: Hold, charge_micros: int, usage: UsageRecord) -> bool:
        """Charges once per request id, releases the rest of the hold, writes the usage row and totals.

        False (and nothing written) when the hold is already settled.
        """
        ...

    async def expired_holds(self, now: datetime, limit: int) -> list[Hold]:
        """Unsettled holds whose deadline has passed (their process died)."""
        ...

    async def list_usage(
        self, account_id: str, filters: Mapping[str, Any], before_id: str, limit: int
    ) -> list[UsageRecord]:
        """The account's usage rows, newest first, older than `before_id` when given."""
        ...

    async def usage_totals(self, account_id: str, group_by: str, start_day: str, end_day: str) -> list[dict[str, Any]]:
        """Pre-aggregated totals grouped by day, model, token or day and model."""
        ...
