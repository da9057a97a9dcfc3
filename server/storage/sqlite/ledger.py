"""Holds and settlements on SQLite: conditional updates, never read-check-write."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from server.domain.records import Funds, Hold, UsageRecord
from server.storage.sqlite.database import SqliteDatabase, from_db_time, to_db_time

_USAGE_COLUMNS = (
    "id, request_id, account_id, token_id, token_name, requested_model, served_model, channel, stream,"
    " input_tokens, cached_tokens, cache_write_tokens, output_tokens, reasoning_tokens, cost_micros, estimated,"
    " status, latency_ms, time_to_first_token_ms, client_ip, created_at"
)
_FILTERS = {"token_id": "token_id = ?", "model": "(requested_model = ? OR served_model = ?)", "status": "status = ?"}
_GROUPS = {
    "day": "day",
    "model": "model",
    "token": "token_id",
    "day_and_model": "day, model",
}


def _usage(row: sqlite3.Row) -> UsageRecord:
    values = list(row)
    values[8] = bool(values[8])
    values[15] = bool(values[15])
    values[20] = from_db_time(values[20])
    return UsageRecord(*values)


class SqliteLedger:
    """LedgerStore on SQLite."""

    def __init__(self, database: SqliteDatabase) -> None:
        self._db = database

    async def account_discount(self, account_id: str) -> str | None:
        row = await self._db.fetchone("SELECT discount FROM accounts WHERE id = ?", (account_id,))
        return None if row is None else str(row[0])

    async def funds(self, account_id: str, token_id: str) -> Funds | None:
        row = await self._db.fetchone(
            "SELECT a.balance_micros - a.held_micros, t.spend_cap_micros, t.spent_micros + t.held_micros, a.discount"
            " FROM accounts a JOIN api_tokens t ON t.account_id = a.id WHERE a.id = ? AND t.id = ?",
            (account_id, token_id),
        )
        if row is None:
            return None
        cap, committed = row[1], row[2]
        return Funds(row[0], max(0, cap - committed) if cap else None, row[3])

    async def place_hold(self, hold: Hold) -> bool:
        async with self._db.transaction() as connection:
            cursor = await connection.execute(
                "UPDATE accounts SET held_micros = held_micros + ?"
                " WHERE id = ? AND disabled = 0 AND balance_micros - held_micros >= ?",
                (hold.amount_micros, hold.account_id, hold.amount_micros),
            )
            if cursor.rowcount != 1:
                return False
            cursor = await connection.execute(
                "UPDATE api_tokens SET held_micros = held_micros + ?"
                " WHERE id = ? AND (spend_cap_micros = 0 OR spent_micros + held_micros + ? <= spend_cap_micros)",
                (hold.amount_micros, hold.token_id, hold.amount_micros),
            )
            if cursor.rowcount != 1:
                await connection.execute(
                    "UPDATE accounts SET held_micros = held_micros - ? WHERE id = ?",
                    (hold.amount_micros, hold.account_id),
                )
                return False
            await connection.execute(
                "INSERT INTO holds (request_id, account_id, token_id, amount_micros, created_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    hold.request_id,
                    hold.account_id,
                    hold.token_id,
                    hold.amount_micros,
                    to_db_time(hold.created_at),
                    to_db_time(hold.expires_at),
                ),
            )
        return True

    async def settle(self, hold: Hold, charge_micros: int, usage: UsageRecord) -> bool:
        charge = max(0, min(charge_micros, hold.amount_micros))
        at = to_db_time(usage.created_at)
        async with self._db.transaction() as connection:
            cursor = await connection.execute(
                "UPDATE holds SET settled_at = ? WHERE request_id = ? AND settled_at IS NULL", (at, hold.request_id)
            )
            if cursor.rowcount != 1:
                return False
            await connection.execute(
                "UPDATE accounts SET held_micros = held_micros - ?, balance_micros = balance_micros - ? WHERE id = ?",
                (hold.amount_micros, charge, hold.account_id),
            )
            await connection.execute(
                "UPDATE api_tokens SET held_micros = held_micros - ?, spent_micros = spent_micros + ?,"
                " last_used_at = ? WHERE id = ?",
                (hold.amount_micros, charge, at, hold.token_id),
            )
            if charge:
                await connection.execute(
                    "INSERT INTO ledger_entries"
                    " (id, account_id, amount_micros, kind, actor, reason, created_at, request_id)"
                    " VALUES (?, ?, ?, 'charge', ?, ?, ?, ?)",
                    (
                        "led_" + usage.id.removeprefix("use_"),
                        hold.account_id,
                        -charge,
                        usage.token_id,
                        f"{usage.served_model or usage.requested_model} call",
                        at,
                        hold.request_id,
                    ),
                )
            record = [getattr(usage, name.strip()) for name in _USAGE_COLUMNS.split(",")]
            record[8], record[15], record[20] = int(usage.stream), int(usage.estimated), at
            record[14] = charge
            placeholders = ", ".join("?" * len(record))
            await connection.execute(f"INSERT INTO usage_logs ({_USAGE_COLUMNS}) VALUES ({placeholders})", record)
            await connection.execute(
                "INSERT INTO usage_daily (account_id, day, model, token_id, requests, input_tokens, cached_tokens,"
                " cache_write_tokens, output_tokens, cost_micros) VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?, ?)"
                " ON CONFLICT (account_id, day, model, token_id) DO UPDATE SET requests = requests + 1,"
                " input_tokens = input_tokens + excluded.input_tokens,"
                " cached_tokens = cached_tokens + excluded.cached_tokens,"
                " cache_write_tokens = cache_write_tokens + excluded.cache_write_tokens,"
                " output_tokens = output_tokens + excluded.output_tokens,"
                " cost_micros = cost_micros + excluded.cost_micros",
                (
                    hold.account_id,
                    at[:10],
                    usage.served_model or usage.requested_model,
                    usage.token_id,
                    usage.input_tokens,
                    usage.cached_tokens,
                    usage.cache_write_tokens,
                    usage.output_tokens,
                    charge,
                ),
            )
        return True

    async def expired_holds(self, now: datetime, limit: int) -> list[Hold]:
        rows = await self._db.fetchall(
            "SELECT request_id, account_id, token_id, amount_micros, created_at, expires_at FROM holds"
            " WHERE settled_at IS NULL AND expires_at < ? ORDER BY expires_at LIMIT ?",
            (to_db_time(now), limit),
        )
        return [Hold(r[0], r[1], r[2], r[3], from_db_time(r[4]), from_db_time(r[5])) for r in rows]

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
            params.append(to_db_time(filters["start"]))
        if filters.get("end"):
            clauses.append("created_at < ?")
            params.append(to_db_time(filters["end"]))
        if before_id:
            clauses.append("id < ?")
            params.append(before_id)
        rows = await self._db.fetchall(
            f"SELECT {_USAGE_COLUMNS} FROM usage_logs WHERE {' AND '.join(clauses)} ORDER BY id DESC LIMIT ?",
            [*params, limit],
        )
        return [_usage(row) for row in rows]

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
        return [dict(zip([*names, *totals], row, strict=True)) for row in rows]
