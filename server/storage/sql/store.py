"""SqlStore: the Store over any SQL Database; SQLite and PostgreSQL differ only in their Database."""

from __future__ import annotations

from server.storage.migrations import load_migrations
from server.storage.sql.accounts import SqlAccounts
from server.storage.sql.database import Database
from server.storage.sql.ledger import SqlLedger
from server.storage.sql.sessions import SqlSessions
from server.storage.sql.tokens import SqlTokens


class SqlStore:
    """Store on a SQL database; its roles are the `accounts`, `sessions`, `tokens` and `ledger` attributes."""

    def __init__(self, database: Database) -> None:
        self._db = database
        self.accounts = SqlAccounts(database)
        self.sessions = SqlSessions(database)
        self.tokens = SqlTokens(database)
        self.ledger = SqlLedger(database)

    async def migrate(self) -> int:
        await self._db.apply_migrations(load_migrations(self._db.backend))
        return await self.schema_version()

    async def schema_version(self) -> int:
        return await self._db.schema_version()

    async def get_setting(self, key: str) -> str | None:
        row = await self._db.fetchone("SELECT value FROM settings WHERE key = ?", (key,))
        return None if row is None else str(row[0])

    async def put_setting_if_absent(self, key: str, value: str) -> bool:
        changed = await self._db.execute(
            "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING", (key, value)
        )
        return changed == 1

    async def close(self) -> None:
        await self._db.close()
