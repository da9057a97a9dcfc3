"""API tokens; every query is scoped by account, and deleted tokens are never returned."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from server.domain.records import ApiToken, TokenSettings
from server.storage.sql.database import Database, Dialect, Row, set_clause

_COLUMNS = (
    "id, account_id, name, key_hash, masked_key, spend_cap_micros, spent_micros, expires_at, allowed_models,"
    " allowed_ips, max_concurrency, requests_per_minute, tokens_per_minute, disabled, created_at, last_used_at"
)
_SETTINGS = frozenset(field for field in TokenSettings.__dataclass_fields__)
_JSON_LISTS = frozenset({"allowed_models", "allowed_ips"})
_TIMES = frozenset({"expires_at", "created_at", "last_used_at"})


def _token(row: Row, dialect: Dialect) -> ApiToken:
    return ApiToken(
        id=row[0],
        account_id=row[1],
        name=row[2],
        key_hash=row[3],
        masked_key=row[4],
        spend_cap_micros=row[5],
        spent_micros=row[6],
        expires_at=None if row[7] is None else dialect.from_time(row[7]),
        allowed_models=dialect.from_list(row[8]),
        allowed_ips=dialect.from_list(row[9]),
        max_concurrency=row[10],
        requests_per_minute=row[11],
        tokens_per_minute=row[12],
        disabled=bool(row[13]),
        created_at=dialect.from_time(row[14]),
        last_used_at=None if row[15] is None else dialect.from_time(row[15]),
    )


class SqlTokens:
    """TokenStore in SQL."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def _column_value(self, field: str, value: Any) -> Any:
        if field in _JSON_LISTS:
            return json.dumps(list(value))
        if field in _TIMES:
            return None if value is None else self._db.dialect.time(value)
        return value

    async def insert_token(self, token: ApiToken) -> None:
        values = [self._column_value(name.strip(), getattr(token, name.strip())) for name in _COLUMNS.split(",")]
        placeholders = ", ".join("?" * len(values))
        await self._db.execute(f"INSERT INTO api_tokens ({_COLUMNS}) VALUES ({placeholders})", values)

    async def get_token(self, account_id: str, token_id: str) -> ApiToken | None:
        row = await self._db.fetchone(
            f"SELECT {_COLUMNS} FROM api_tokens WHERE account_id = ? AND id = ? AND deleted_at IS NULL",
            (account_id, token_id),
        )
        return None if row is None else _token(row, self._db.dialect)

    async def list_tokens(self, account_id: str, after_id: str, limit: int) -> list[ApiToken]:
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM api_tokens WHERE account_id = ? AND id > ? AND deleted_at IS NULL"
            " ORDER BY id LIMIT ?",
            (account_id, after_id, limit),
        )
        return [_token(row, self._db.dialect) for row in rows]

    async def update_token(self, account_id: str, token_id: str, changes: Mapping[str, Any]) -> ApiToken | None:
        assignments = set_clause(changes, _SETTINGS, "token settings")
        if changes:
            values = [self._column_value(field, value) for field, value in changes.items()]
            await self._db.execute(
                f"UPDATE api_tokens SET {assignments} WHERE account_id = ? AND id = ? AND deleted_at IS NULL",
                [*values, account_id, token_id],
            )
        return await self.get_token(account_id, token_id)

    async def delete_token(self, account_id: str, token_id: str, now: datetime) -> bool:
        changed = await self._db.execute(
            "UPDATE api_tokens SET deleted_at = ? WHERE account_id = ? AND id = ? AND deleted_at IS NULL",
            (self._db.dialect.time(now), account_id, token_id),
        )
        return changed == 1

    async def find_token_by_key_hash(self, key_hash: str) -> tuple[ApiToken, bool] | None:
        row = await self._db.fetchone(
            f"SELECT {', '.join('t.' + c.strip() for c in _COLUMNS.split(','))}, a.disabled"
            " FROM api_tokens t JOIN accounts a ON a.id = t.account_id"
            " WHERE t.key_hash = ? AND t.deleted_at IS NULL",
            (key_hash,),
        )
        return None if row is None else (_token(row, self._db.dialect), bool(row[16]))
