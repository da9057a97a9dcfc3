"""Domain records to and from protobuf messages."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from google.api import field_behavior_pb2
from google.protobuf import field_mask_pb2, message, timestamp_pb2
from tollgate.v1 import account_pb2, token_pb2

from server.domain.money import format_usd
from server.domain.records import Account, ApiToken, LedgerEntry
from server.errors import InvalidArgumentError


def timestamp(moment: datetime | None) -> timestamp_pb2.Timestamp | None:
    if moment is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def from_timestamp(stamp: timestamp_pb2.Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


def account_message(account: Account) -> account_pb2.Account:
    return account_pb2.Account(
        id=account.id,
        name=account.name,
        disabled=account.disabled,
        balance_micros=account.balance_micros,
        balance_usd=format_usd(account.balance_micros),
        held_micros=account.held_micros,
        held_usd=format_usd(account.held_micros),
        available_micros=account.available_micros,
        available_usd=format_usd(account.available_micros),
        discount=account.discount,
        create_time=timestamp(account.created_at),
    )


def ledger_entry_message(entry: LedgerEntry) -> account_pb2.LedgerEntry:
    return account_pb2.LedgerEntry(
        id=entry.id,
        account_id=entry.account_id,
        amount_micros=entry.amount_micros,
        amount_usd=format_usd(entry.amount_micros),
        kind=entry.kind,
        actor=entry.actor,
        reason=entry.reason,
        create_time=timestamp(entry.created_at),
    )


def token_message(token: ApiToken) -> token_pb2.Token:
    capped = token.spend_cap_micros > 0
    return token_pb2.Token(
        id=token.id,
        name=token.name,
        masked_key=token.masked_key,
        spend_cap_usd=format_usd(token.spend_cap_micros),
        spend_cap_micros=token.spend_cap_micros,
        spent_micros=token.spent_micros,
        spent_usd=format_usd(token.spent_micros),
        remaining_cap_micros=max(0, token.spend_cap_micros - token.spent_micros) if capped else 0,
        expire_time=timestamp(token.expires_at),
        allowed_models=token.allowed_models,
        allowed_ips=token.allowed_ips,
        max_concurrency=token.max_concurrency,
        requests_per_minute=token.requests_per_minute,
        tokens_per_minute=token.tokens_per_minute,
        disabled=token.disabled,
        create_time=timestamp(token.created_at),
        last_used_time=timestamp(token.last_used_at),
        account_id=token.account_id,
    )


_Body = TypeVar("_Body", bound=message.Message)
Writable = Mapping[str, tuple[str, Callable[[_Body], Any]]]
"""An Update call's writable update_mask paths → the record field each sets, and how its value is read."""


def masked_changes(
    body: _Body, mask: field_mask_pb2.FieldMask, writable: Writable[_Body], param_prefix: str
) -> dict[str, Any]:
    """The changes an Update call asks for: every path of its mask, each writable, read from its body."""
    reject_output_only(body, param_prefix)
    if not mask.paths:
        raise InvalidArgumentError("update_mask must name the fields to change", param="update_mask")
    changes: dict[str, Any] = {}
    for path in mask.paths:
        if path not in writable:
            raise InvalidArgumentError(f"{path!r} cannot be changed", param="update_mask")
        field, read = writable[path]
        changes[field] = read(body)
    return changes


def reject_output_only(body: message.Message, param_prefix: str = "") -> None:
    """Refuses a request whose body sets a field the server owns (id, spent, owner…)."""
    for field, _ in body.ListFields():
        behaviors = field.GetOptions().Extensions[field_behavior_pb2.field_behavior]
        if field_behavior_pb2.OUTPUT_ONLY in behaviors:
            name = param_prefix + field.name
            raise InvalidArgumentError(f"{name} is set by the server and cannot be written", param=name)
