"""Console sessions."""

from __future__ import annotations

from datetime import datetime

from server.domain.records import Session
from server.storage.sql.database import Database


class SqlSessions:
    """SessionStore in SQL."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def insert_session(self, session: Session, created_at: datetime) -> None:
        time = self._db.dialect.time
        await self._db.execute(
            "INSERT INTO sessions (token_hash, account_id, operator, expires_at, created_at) VALUES (?, ?, ?, ?, ?)",
            (
                session.token_hash,
                session.account_id or None,
                session.operator,
                time(session.expires_at),
                time(created_at),
            ),
        )

    async def find_session(self, token_hash: str, now: datetime) -> Session | None:
        row = await self._db.fetchone(
            "SELECT s.token_hash, s.account_id, s.operator, s.expires_at FROM sessions s"
            " LEFT JOIN accounts a ON a.id = s.account_id"
            " WHERE s.token_hash = ? AND s.expires_at > ? AND (s.operator OR NOT a.disabled)",
            (token_hash, self._db.dialect.time(now)),
        )
        if row is None:
            return None
        return Session(row[0], row[1] or "", bool(row[2]), self._db.dialect.from_time(row[3]))

    async def delete_session(self, token_hash: str) -> None:
        await self._db.execute("DELETE FROM sessions WHERE token_hash = ?", (token_hash,))
