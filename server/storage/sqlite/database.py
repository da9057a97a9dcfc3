"""One SQLite connection shared by the process, with a lock so transactions never interleave."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiosqlite

from server.errors import InvalidArgumentError, UnavailableError

_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=5000",
)
Params = Sequence[Any]


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


def optional_time(text: str | None) -> datetime | None:
    return None if text is None else from_db_time(text)


class SqliteDatabase:
    """Serialises access to one connection: a statement or a whole transaction at a time."""

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
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """BEGIN IMMEDIATE … COMMIT (ROLLBACK on any exception): the write lock is taken up front."""
        async with self._lock:
            await self._connection.execute("BEGIN IMMEDIATE")
            try:
                yield self._connection
            except BaseException:
                await self._connection.execute("ROLLBACK")
                raise
            await self._connection.execute("COMMIT")

    async def fetchone(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        async with self._lock, self._connection.execute(sql, params) as cursor:
            return await cursor.fetchone()

    async def fetchall(self, sql: str, params: Params = ()) -> Iterable[sqlite3.Row]:
        async with self._lock, self._connection.execute(sql, params) as cursor:
            return await cursor.fetchall()

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Runs one statement in its own transaction; returns the number of rows changed."""
        async with self._lock:
            cursor = await self._connection.execute(sql, params)
            return cursor.rowcount

    async def close(self) -> None:
        await self._connection.close()
