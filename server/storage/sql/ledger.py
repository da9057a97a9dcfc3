"""Holds and settlements: no write that moves money acts on a stale read.

A hold reads its funds with the rows locked (where reads do not lock) inside its transaction, so what it
sized the hold from is what it changes (PostgreSQL's ledger first tries a write that checks the funds again
itself, see postgres/ledger.py); a settlement is conditional on its hold still being open.

A hold row lives while its call runs; the settlement deletes it and writes the call's usage row, which is
the charge (one per request id). An account's balance is its credits in `ledger_entries` less the
`cost_micros` of its usage rows.

Rows are locked in one order everywhere, so two transactions never wait for each other in a cycle:
the hold (settlement only), then the account, then the token. Nothing locks a token before its account.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from server.domain.records import Funds, Hold, UsageRecord
from server.storage.sql.database import Database, Dialect, Row, Transaction

USAGE_COLUMNS = (
    "id, request_id, account_id, token_id, token_name, requested_model, served_model, channel, stream,"
    " input_tokens, cached_tokens, cache_write_tokens, output_tokens, reasoning_tokens, cost_micros, estimated,"
    " status, latency_ms, time_to_first_token_ms, client_ip, created_at"
)
_USAGE_FIELDS = tuple(name.strip() for name in USAGE_COLUMNS.split(","))
USAGE_VALUES = ", ".join("?" * len(_USAGE_FIELDS))
_USAGE_COST, _USAGE_AT = _USAGE_FIELDS.index("cost_micros"), _USAGE_FIELDS.index("created_at")
HOLD_COLUMNS = "request_id, account_id, token_id, amount_micros, created_at, expires_at"
FUNDS = (
    "SELECT a.balance_micros - a.held_micros, t.spend_cap_micros, t.spent_micros + t.held_micros, a.discount,"
    " a.disabled FROM accounts a JOIN api_tokens t ON t.account_id = a.id WHERE a.id = ? AND t.id = ?"
)
"""An account's and one of its tokens' funds: read by `funds_of`."""
# A hold's writes and a settlement's, once each: PostgreSQL's ledger runs the same ones as WITH queries. Each UPDATE
# ends in its WHERE clause, so a condition can be appended.
ADD_HOLD_TO_ACCOUNT = "UPDATE accounts SET held_micros = held_micros + ? WHERE id = ?"
ADD_HOLD_TO_TOKEN = "UPDATE api_tokens SET held_micros = held_micros + ? WHERE id = ?"
INSERT_HOLD = f"INSERT INTO holds ({HOLD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
DELETE_OPEN_HOLD = "DELETE FROM holds WHERE request_id = ? AND settled_at IS NULL"
CHARGE_ACCOUNT = "UPDATE accounts SET held_micros = held_micros - ?, balance_micros = balance_micros - ? WHERE id = ?"
CHARGE_TOKEN = (
    "UPDATE api_tokens SET held_micros = held_micros - ?, spent_micros = spent_micros + ?, last_used_at = ?"
    " WHERE id = ?"
)
DAILY_COLUMNS = (
    "account_id, day, model, token_id, requests, input_tokens, cached_tokens, cache_write_tokens, output_tokens,"
    " cost_micros"
)
DAILY_VALUES = "?, ?, ?, ?, 1, ?, ?, ?, ?, ?"
ADD_TO_DAILY = (
    " ON CONFLICT (account_id, day, model, token_id) DO UPDATE SET requests = usage_daily.requests + 1,"
    " input_tokens = usage_daily.input_tokens + excluded.input_tokens,"
    " cached_tokens = usage_daily.cached_tokens + excluded.cached_tokens,"
    " cache_write_tokens = usage_daily.cache_write_tokens + excluded.cache_write_tokens,"
    " output_tokens = usage_daily.output_tokens + excluded.output_tokens,"
    " cost_micros = usage_daily.cost_micros + excluded.cost_micros"
)
_FILTERS = {"token_id": "token_id = ?", "model": "(requested_model = ? OR served_model = ?)", "status": "status = ?"}
_GROUPS = {
    "day": "day",
    "model": "model",
    "token": "token_id",
    "day_and_model": "day, model",
}


def _usage(row: Row, dialect: Dialect) -> UsageRecord:
    values = list(row)
    values[8] = bool(values[8])
    values[15] = bool(values[15])
    values[20] = dialect.from_time(values[20])
    return UsageRecord(*values)


def funds_of(row: Row | None) -> tuple[Funds | None, bool]:
    """The funds a FUNDS row holds (None without the account or the token), and whether the account is disabled."""
    if row is None:
        return None, False
    return Funds(row[0], max(0, row[1] - row[2]) if row[1] else None, row[3]), bool(row[4])


def fits(hold: Hold, funds: Funds | None, disabled: bool) -> bool:
    """Whether `hold` may be placed on the funds it was sized from: an enabled account's, and no more than they pay."""
    return funds is not None and not disabled and hold.amount_micros <= funds.budget_micros


def hold_row(hold: Hold, dialect: Dialect) -> tuple[Any, ...]:
    """A hold's HOLD_COLUMNS."""
    created, expires = dialect.time(hold.created_at), dialect.time(hold.expires_at)
    return hold.request_id, hold.account_id, hold.token_id, hold.amount_micros, created, expires


@dataclasses.dataclass(frozen=True)
class SettlementWrites:
    """The parameters of a settlement's writes once its hold is gone: the account's and the token's release and
    charge, the usage row (which is the charge) and the day's totals."""

    account: tuple[Any, ...]
    token: tuple[Any, ...]
    usage: list[Any]
    daily: tuple[Any, ...]

    @classmethod
    def of(cls, hold: Hold, charge_micros: int, usage: UsageRecord, dialect: Dialect) -> SettlementWrites:
        charge = max(0, min(charge_micros, hold.amount_micros))  # never more than was held
        at = dialect.time(usage.created_at)
        record = [getattr(usage, name) for name in _USAGE_FIELDS]
        record[_USAGE_AT] = at
        record[_USAGE_COST] = charge
        return cls(
            (hold.amount_micros, charge, hold.account_id),
            (hold.amount_micros, charge, at, hold.token_id),
            record,
            (
                hold.account_id,
                usage.created_at.astimezone(UTC).strftime("%Y-%m-%d"),
                usage.served_model or usage.requested_model,
                usage.token_id,
                usage.input_tokens,
                usage.cached_tokens,
                usage.cache_write_tokens,
                usage.output_tokens,
                charge,
            ),
        )


class SqlLedger:
    """LedgerStore in SQL."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def account_discount(self, account_id: str) -> str | None:
        row = await self._db.fetchone("SELECT discount FROM accounts WHERE id = ?", (account_id,))
        return None if row is None else str(row[0])

    async def place_hold(self, account_id: str, token_id: str, size: Callable[[Funds | None], Hold]) -> bool:
        async with self._db.transaction() as tx:
            # Locked (account, then token) until the commit where reads do not lock (PostgreSQL); on SQLite the
            # transaction holds the write lock. Either way what this reads is what the writes below change.
            funds, disabled = funds_of(await tx.fetchone(FUNDS + self._db.dialect.lock_row, (account_id, token_id)))
            hold = size(funds)
            if not fits(hold, funds, disabled):
                return False  # a disabled account, or a hold larger than the funds it was sized from
            await self._reserve(tx, hold)
        return True

    async def _reserve(self, tx: Transaction, hold: Hold) -> None:
        """Adds the hold to what its account and token hold, and stores it; their rows are locked already.

        Nothing is read back: in a pipeline, it all travels with the commit.
        """
        await tx.send(ADD_HOLD_TO_ACCOUNT, (hold.amount_micros, hold.account_id))
        await tx.send(ADD_HOLD_TO_TOKEN, (hold.amount_micros, hold.token_id))
        await tx.send(INSERT_HOLD, hold_row(hold, self._db.dialect))

    async def settle(self, hold: Hold, charge_micros: int, usage: UsageRecord) -> bool:
        writes = SettlementWrites.of(hold, charge_micros, usage, self._db.dialect)
        async with self._db.transaction() as tx:
            # Conditional on the hold being open: of two settlements (a reaper's among them) one wins. A process of
            # the release before, during an upgrade, marks a hold settled instead of deleting it.
            if await tx.execute(DELETE_OPEN_HOLD, (hold.request_id,)) != 1:
                return False
            # Nothing below is read back: in a pipeline, it all travels with the commit.
            await tx.send(CHARGE_ACCOUNT, writes.account)
            await tx.send(CHARGE_TOKEN, writes.token)
            await tx.send(f"INSERT INTO usage_logs ({USAGE_COLUMNS}) VALUES ({USAGE_VALUES})", writes.usage)
            await tx.send(
                f"INSERT INTO usage_daily ({DAILY_COLUMNS}) VALUES ({DAILY_VALUES}){ADD_TO_DAILY}", writes.daily
            )
        return True

    async def expired_holds(self, now: datetime, limit: int) -> list[Hold]:
        rows = await self._db.fetchall(
            f"SELECT {HOLD_COLUMNS} FROM holds WHERE settled_at IS NULL AND expires_at < ? ORDER BY expires_at LIMIT ?",
            (self._db.dialect.time(now), limit),
        )
        from_time = self._db.dialect.from_time
        return [Hold(r[0], r[1], r[2], r[3], from_time(r[4]), from_time(r[5])) for r in rows]

    async def list_usage(
        self, account_id: str, filters: Mapping[str, Any], before_id: str, limit: int
    ) -> list[UsageRecord]:
        clauses, params = ["account_id = ?"], [account_id]
        for name, value in filters.items():
            if name in _FILTERS and value:
                clauses.append(_FILTERS[name])
                params.extend([value] * _FILTERS[name].count("?"))
        if filters.get("start"):
            clauses.append("created_at >= ?")
            params.append(self._db.dialect.time(filters["start"]))
        if filters.get("end"):
            clauses.append("created_at < ?")
            params.append(self._db.dialect.time(filters["end"]))
        if before_id:
            clauses.append("id < ?")
            params.append(before_id)
        rows = await self._db.fetchall(
            f"SELECT {USAGE_COLUMNS} FROM usage_logs WHERE {' AND '.join(clauses)} ORDER BY id DESC LIMIT ?",
            [*params, limit],
        )
        return [_usage(row, self._db.dialect) for row in rows]

    async def usage_totals(self, account_id: str, group_by: str, start_day: str, end_day: str) -> list[dict[str, Any]]:
        keys = _GROUPS[group_by]
        rows = await self._db.fetchall(
            f"SELECT {keys}, SUM(requests), SUM(input_tokens), SUM(cached_tokens), SUM(cache_write_tokens),"
            f" SUM(output_tokens), SUM(cost_micros) FROM usage_daily"
            f" WHERE account_id = ? AND day >= ? AND day <= ? GROUP BY {keys} ORDER BY {keys}",
            (account_id, start_day, end_day),
        )
        names = [key.strip() for key in keys.split(",")]
        totals = ["requests", "input_tokens", "cached_tokens", "cache_write_tokens", "output_tokens", "cost_micros"]
        # SUM of a BIGINT is NUMERIC on PostgreSQL: back to int, exactly.
        return [
            dict(zip([*names, *totals], [*row[: len(names)], *map(int, row[len(names) :])], strict=True))
            for row in rows
        ]
