"""Value types the domain and the stores exchange."""

from __future__ import annotations

import dataclasses
from datetime import datetime


@dataclasses.dataclass(frozen=True)
class Account:
    """A customer account and its money in micro-USD."""

    id: str
    name: str
    disabled: bool
    balance_micros: int
    held_micros: int
    discount: str
    created_at: datetime

    @property
    def available_micros(self) -> int:
        """What new requests may spend."""
        return self.balance_micros - self.held_micros


@dataclasses.dataclass(frozen=True)
class Credentials:
    """An account's login facts."""

    account_id: str
    password_hash: str
    disabled: bool


@dataclasses.dataclass(frozen=True)
class LedgerEntry:
    """A movement of money by the operator: positive credits, negative debits (a call's charge is its usage row)."""

    id: str
    account_id: str
    amount_micros: int
    kind: str
    actor: str
    reason: str
    created_at: datetime


@dataclasses.dataclass(frozen=True)
class Movement:
    """Money to add to a balance (a credit, amount > 0) or take from it (a debit, amount < 0), recorded once per
    `idempotency_key`; `fingerprint` tells a replay of the same request from another request under that key."""

    entry_id: str
    account_id: str
    amount_micros: int
    actor: str
    reason: str
    idempotency_key: str
    fingerprint: str
    at: datetime

    @property
    def kind(self) -> str:
        return "credit" if self.amount_micros > 0 else "debit"

    def entry(self) -> LedgerEntry:
        """The ledger entry this movement records."""
        return LedgerEntry(
            self.entry_id, self.account_id, self.amount_micros, self.kind, self.actor, self.reason, self.at
        )


@dataclasses.dataclass(frozen=True)
class Moved:
    """What the store found or did under a movement's key."""

    entry: LedgerEntry | None
    """The key's ledger entry: this movement's, or the one first recorded under the key; None when a debit took
    more than the account had available, and nothing was recorded."""
    fingerprint: str
    """The fingerprint stored with the key (the caller compares it with its own: a replay, or a reuse)."""
    available_micros: int
    """The account's balance less its holds when the store looked (before this movement, if it was recorded)."""


@dataclasses.dataclass(frozen=True)
class Session:
    """A console session; `account_id` is empty for the operator's."""

    token_hash: str
    account_id: str
    operator: bool
    expires_at: datetime


@dataclasses.dataclass(frozen=True)
class TokenSettings:
    """The writable settings of a token."""

    name: str
    spend_cap_micros: int
    expires_at: datetime | None
    allowed_models: tuple[str, ...]
    allowed_ips: tuple[str, ...]
    max_concurrency: int
    requests_per_minute: int
    tokens_per_minute: int
    disabled: bool


@dataclasses.dataclass(frozen=True)
class ApiToken(TokenSettings):
    """An API token as stored: its settings and what the server owns. The key is kept only as a hash."""

    id: str
    account_id: str
    key_hash: str
    masked_key: str
    spent_micros: int
    created_at: datetime
    last_used_at: datetime | None


@dataclasses.dataclass(frozen=True)
class Hold:
    """Money reserved for one request: an upper bound of its cost."""

    request_id: str
    account_id: str
    token_id: str
    amount_micros: int
    created_at: datetime
    expires_at: datetime


@dataclasses.dataclass(frozen=True)
class UsageRecord:
    """One relayed call as the usage log keeps it: metadata only."""

    id: str
    request_id: str
    account_id: str
    token_id: str
    token_name: str
    requested_model: str
    served_model: str
    channel: str
    stream: bool
    input_tokens: int
    cached_tokens: int
    cache_write_tokens: int
    output_tokens: int
    reasoning_tokens: int
    cost_micros: int
    estimated: bool
    status: str
    latency_ms: int
    time_to_first_token_ms: int | None
    client_ip: str
    created_at: datetime


@dataclasses.dataclass(frozen=True)
class Funds:
    """What an account (and one of its tokens) can still spend, and the account's price multiplier."""

    available_micros: int
    token_remaining_micros: int | None
    """None when the token has no cap."""
    discount: str

    @property
    def budget_micros(self) -> int:
        if self.token_remaining_micros is None:
            return self.available_micros
        return min(self.available_micros, self.token_remaining_micros)
