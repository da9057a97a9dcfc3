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
    """A movement of money: positive credits, negative charges."""

    id: str
    account_id: str
    amount_micros: int
    kind: str
    actor: str
    reason: str
    created_at: datetime


@dataclasses.dataclass(frozen=True)
class Credit:
    """A credit to record, keyed for idempotency by `idempotency_key` and the request's fingerprint."""

    entry_id: str
    account_id: str
    amount_micros: int
    actor: str
    reason: str
    idempotency_key: str
    fingerprint: str
    at: datetime


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
