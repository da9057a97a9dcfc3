"""SqliteStore: the embedded default store, one file in WAL mode, with versioned migrations."""

from __future__ import annotations

import sqlite3

from server.storage.migrations import load_migrations
from server.storage.sqlite.accounts import SqliteAccounts
from server.storage.sqlite.database import SqliteDatabase
from server.storage.sqlite.ledger import SqliteLedger
from server.storage.sqlite.sessions import SqliteSessions
from server.storage.sqlite.tokens import SqliteTokens


class SqliteStore:
    """Store on one SQLite file; its roles are the `accounts`, `sessions`, `tokens` and `ledger` attributes."""

    def __init__(self, database: SqliteDatabase) -> None:
        self._db = database
        self.accounts = SqliteAccounts(database)
        self.sessions = SqliteSessions(database)
        self.tokens = SqliteTokens(database)
        self.ledger = SqliteLedger(database)

    @classmethod
    async def open(cls, database_url: str) -> SqliteStore:
        """Opens (creating it and its folder if needed) the database of the URL."""
        return cls(await SqliteDatabase.open(database_url))

    async def migrate(self) -> int:
        await self._db.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))"
        )
        for migration in load_migrations("sqlite"):
            # BEGIN IMMEDIATE takes the write lock first, so processes starting together apply each step once.
            async with self._db.transaction() as connection:
                async with connection.execute(
                    "SELECT 1 FROM schema_migrations WHERE version = ?", (migration.version,)
                ) as cursor:
                    if await cursor.fetchone() is not None:
                        continue
                for statement in _statements(migration.sql):
                    await connection.execute(statement)
                await connection.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (?, ?)", (migration.version, migration.name)
                )
        return await self.schema_version()

    async def schema_version(self) -> int:
        exists = await self._db.fetchone(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
        )
        if exists is None:
            return 0
        row = await self._db.fetchone("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
        return int(row[0]) if row else 0

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


def _statements(script: str) -> list[str]:
    """Splits a migration into statements (executescript would commit on its own)."""
    statements: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        if line.lstrip().startswith("--"):
            continue
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.strip():
        raise RuntimeError("a migration ends with an incomplete statement")
    return statements
