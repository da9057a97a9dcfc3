"""One SQLite connection shared by the process, with a lock so transactions never interleave."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiosqlite

from server.errors import InvalidArgumentError, UnavailableError
from server.storage.migrations import Migration
from server.storage.sql.database import Params, Row

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


def to_db_time(moment: datetime) -> str:
    """UTC ISO 8601 with microseconds, which sorts as text."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def from_db_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


class SqliteDialect:
    """Times as sortable ISO 8601 text, lists as JSON text; writes are serial, so no row locks."""

    lock_row = ""

    def time(self, moment: datetime) -> str:
        return to_db_time(moment)

    def from_time(self, value: Any) -> datetime:
        return from_db_time(value)

    def from_list(self, value: Any) -> tuple[str, ...]:
        return tuple(json.loads(value))


class _Transaction:
    """Statements on the connection while the database's lock and an open transaction are held."""

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._connection = connection

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        async with self._connection.execute(sql, params) as cursor:
            return await cursor.fetchone()

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        async with self._connection.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    async def execute(self, sql: str, params: Params = ()) -> int:
        cursor = await self._connection.execute(sql, params)
        return cursor.rowcount


class SqliteDatabase:
    """Serialises access to one connection: a statement or a whole transaction at a time."""

    backend = "sqlite"
    dialect = SqliteDialect()

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._connection = connection
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, database_url: str) -> SqliteDatabase:
        path = sqlite_path(database_url)
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            connection = await aiosqlite.connect(path, isolation_level=None)
            for pragma in _PRAGMAS:
                await connection.execute(pragma)
        except sqlite3.Error as exc:
            raise UnavailableError("cannot open the sqlite database") from exc
        return cls(connection)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[_Transaction]:
        """BEGIN IMMEDIATE … COMMIT (ROLLBACK on any exception): the write lock is taken up front."""
        async with self._lock:
            await self._connection.execute("BEGIN IMMEDIATE")
            try:
                yield _Transaction(self._connection)
            except BaseException:
                await self._connection.execute("ROLLBACK")
                raise
            await self._connection.execute("COMMIT")

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        async with self._lock:
            return await _Transaction(self._connection).fetchone(sql, params)

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        async with self._lock:
            return await _Transaction(self._connection).fetchall(sql, params)

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Runs one statement in its own transaction; returns the number of rows changed."""
        async with self._lock:
            return await _Transaction(self._connection).execute(sql, params)

    async def apply_migrations(self, migrations: Sequence[Migration]) -> None:
        await self.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))"
        )
        for migration in migrations:
            # BEGIN IMMEDIATE takes the write lock first, so processes starting together apply each step once.
            async with self.transaction() as tx:
                if await tx.fetchone("SELECT 1 FROM schema_migrations WHERE version = ?", (migration.version,)):
                    continue
                for statement in _statements(migration.sql):
                    await tx.execute(statement)
                await tx.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (?, ?)", (migration.version, migration.name)
                )

    async def schema_version(self) -> int:
        exists = await self.fetchone("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'")
        if exists is None:
            return 0
        row = await self.fetchone("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
        return int(row[0]) if row else 0

    async def close(self) -> None:
        await self._connection.close()


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
