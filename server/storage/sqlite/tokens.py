"""API tokens on SQLite; every query is scoped by account, and deleted tokens are never returned."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from server.domain.records import ApiToken, TokenSettings
from server.storage.sqlite.database import SqliteDatabase, from_db_time, optional_time, to_db_time

_COLUMNS = (
    "id, account_id, name, key_hash, masked_key, spend_cap_micros, spent_micros, expires_at, allowed_models,"
    " allowed_ips, max_concurrency, requests_per_minute, tokens_per_minute, disabled, created_at, last_used_at"
)
_SETTINGS = frozenset(field for field in TokenSettings.__dataclass_fields__)
_JSON_LISTS = frozenset({"allowed_models", "allowed_ips"})


def _token(row: sqlite3.Row) -> ApiToken:
    return ApiToken(
        id=row[0],
        account_id=row[1],
        name=row[2],
        key_hash=row[3],
        masked_key=row[4],
        spend_cap_micros=row[5],
        spent_micros=row[6],
        expires_at=optional_time(row[7]),
        allowed_models=tuple(json.loads(row[8])),
        allowed_ips=tuple(json.loads(row[9])),
        max_concurrency=row[10],
        requests_per_minute=row[11],
        tokens_per_minute=row[12],
        disabled=bool(row[13]),
        created_at=from_db_time(row[14]),
        last_used_at=optional_time(row[15]),
    )


def _column_value(field: str, value: Any) -> Any:
    if field in _JSON_LISTS:
        return json.dumps(list(value))
    if field == "expires_at":
        return None if value is None else to_db_time(value)
    if field == "disabled":
        return int(value)
    return value


class SqliteTokens:
    """TokenStore on SQLite."""

    def __init__(self, database: SqliteDatabase) -> None:
        self._db = database

    async def insert_token(self, token: ApiToken) -> None:
        values = [
            token.id,
            token.account_id,
            token.name,
            token.key_hash,
            token.masked_key,
            token.spend_cap_micros,
            token.spent_micros,
            _column_value("expires_at", token.expires_at),
            _column_value("allowed_models", token.allowed_models),
            _column_value("allowed_ips", token.allowed_ips),
            token.max_concurrency,
            token.requests_per_minute,
            token.tokens_per_minute,
            int(token.disabled),
            to_db_time(token.created_at),
            _column_value("expires_at", token.last_used_at),
        ]
        placeholders = ", ".join("?" * len(values))
        await self._db.execute(f"INSERT INTO api_tokens ({_COLUMNS}) VALUES ({placeholders})", values)

    async def get_token(self, account_id: str, token_id: str) -> ApiToken | None:
        row = await self._db.fetchone(
            f"SELECT {_COLUMNS} FROM api_tokens WHERE account_id = ? AND id = ? AND deleted_at IS NULL",
            (account_id, token_id),
        )
        return None if row is None else _token(row)

    async def list_tokens(self, account_id: str, after_id: str, limit: int) -> list[ApiToken]:
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM api_tokens WHERE account_id = ? AND id > ? AND deleted_at IS NULL"
            " ORDER BY id LIMIT ?",
            (account_id, after_id, limit),
        )
        return [_token(row) for row in rows]

    async def update_token(self, account_id: str, token_id: str, changes: Mapping[str, Any]) -> ApiToken | None:
        unknown = set(changes) - _SETTINGS
        if unknown:
            raise ValueError(f"not token settings: {sorted(unknown)}")
        if changes:
            # Column names come from the TokenSettings fields checked above, never from the caller.
            assignments = ", ".join(f"{field} = ?" for field in changes)
            values = [_column_value(field, value) for field, value in changes.items()]
            await self._db.execute(
                f"UPDATE api_tokens SET {assignments} WHERE account_id = ? AND id = ? AND deleted_at IS NULL",
                [*values, account_id, token_id],
            )
        return await self.get_token(account_id, token_id)

    async def delete_token(self, account_id: str, token_id: str, now: datetime) -> bool:
        changed = await self._db.execute(
            "UPDATE api_tokens SET deleted_at = ? WHERE account_id = ? AND id = ? AND deleted_at IS NULL",
            (to_db_time(now), account_id, token_id),
        )
        return changed == 1

    async def find_token_by_key_hash(self, key_hash: str) -> tuple[ApiToken, bool] | None:
        row = await self._db.fetchone(
            f"SELECT {', '.join('t.' + c.strip() for c in _COLUMNS.split(','))}, a.disabled"
            " FROM api_tokens t JOIN accounts a ON a.id = t.account_id"
            " WHERE t.key_hash = ? AND t.deleted_at IS NULL",
            (key_hash,),
        )
        return None if row is None else (_token(row), bool(row[16]))
