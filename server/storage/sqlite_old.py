"""SQLite storage, the embedded default: one file in WAL mode, reached through aiosqlite's worker thread."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import urlsplit

import aiosqlite

from server.errors import InvalidArgumentError, UnavailableError
from server.storage.migrations import load_migrations

_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=5000",
)


def sqlite_path(database_url: str) -> str:
    """The file of a `sqlite:///relative` or `sqlite:////absolute` URL (`sqlite://:memory:` too)."""
    parts = urlsplit(database_url)
    if parts.scheme != "sqlite":
        raise InvalidArgumentError(f"not a sqlite URL: {parts.scheme}://…")
    if parts.netloc == ":memory:":
        return ":memory:"
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    if not path:
        raise InvalidArgumentError("a sqlite URL needs a path: sqlite:///file.db")
    return path


class SqliteStore:
    """Store on one SQLite file."""

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._db = connection

    @classmethod
    async def open(cls, database_url: str) -> SqliteStore:
        """Opens (creating it and its folder if needed) the database of the URL."""
        path = sqlite_path(database_url)
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            connection = await aiosqlite.connect(path, isolation_level=None)
        except sqlite3.Error as exc:
            raise UnavailableError("cannot open the sqlite database") from exc
        for pragma in _PRAGMAS:
            await connection.execute(pragma)
        return cls(connection)

    async def migrate(self) -> int:
        await self._db.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))"
        )
        for migration in load_migrations("sqlite"):
            # BEGIN IMMEDIATE takes the write lock first, so two processes starting together apply each step once.
            await self._db.execute("BEGIN IMMEDIATE")
            try:
                async with self._db.execute(
                    "SELECT 1 FROM schema_migrations WHERE version = ?", (migration.version,)
                ) as cursor:
                    done = await cursor.fetchone() is not None
                if not done:
                    for statement in _statements(migration.sql):
                        await self._db.execute(statement)
                    await self._db.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (?, ?)",
                        (migration.version, migration.name),
                    )
                await self._db.execute("COMMIT")
            except BaseException:
                await self._db.execute("ROLLBACK")
                raise
        return await self.schema_version()

    async def schema_version(self) -> int:
        async with self._db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
        ) as cursor:
            if await cursor.fetchone() is None:
                return 0
        async with self._db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def get_setting(self, key: str) -> str | None:
        async with self._db.execute("SELECT value FROM settings WHERE key = ?", (key,)) as cursor:
            row = await cursor.fetchone()
        return None if row is None else str(row[0])

    async def put_setting_if_absent(self, key: str, value: str) -> bool:
        cursor = await self._db.execute(
            "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING", (key, value)
        )
        return cursor.rowcount == 1

    async def close(self) -> None:
        await self._db.close()


def _statements(script: str) -> list[str]:
    """Splits a migration into statements (sqlite3 executes one at a time; executescript would commit)."""
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
