"""Console sessions on SQLite."""

from __future__ import annotations

from datetime import datetime

from server.domain.records import Session
from server.storage.sqlite.database import SqliteDatabase, from_db_time, to_db_time


class SqliteSessions:
    """SessionStore on SQLite."""

    def __init__(self, database: SqliteDatabase) -> None:
        self._db = database

    async def insert_session(self, session: Session, created_at: datetime) -> None:
        await self._db.execute(
            "INSERT INTO sessions (token_hash, account_id, operator, expires_at, created_at) VALUES (?, ?, ?, ?, ?)",
            (
                session.token_hash,
                session.account_id or None,
                int(session.operator),
                to_db_time(session.expires_at),
                to_db_time(created_at),
            ),
        )

    async def find_session(self, token_hash: str, now: datetime) -> Session | None:
        row = await self._db.fetchone(
            "SELECT s.token_hash, s.account_id, s.operator, s.expires_at FROM sessions s"
            " LEFT JOIN accounts a ON a.id = s.account_id"
            " WHERE s.token_hash = ? AND s.expires_at > ? AND (s.operator = 1 OR a.disabled = 0)",
            (token_hash, to_db_time(now)),
        )
        if row is None:
            return None
        return Session(row[0], row[1] or "", bool(row[2]), from_db_time(row[3]))

    async def delete_session(self, token_hash: str) -> None:
        await self._db.execute("DELETE FROM sessions WHERE token_hash = ?", (token_hash,))
