"""One SQLite connection driven on the event loop, with a lock so transactions never interleave."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from server.errors import DatabaseUnavailableError, InvalidArgumentError, UnavailableError
from server.storage.migrations import Migration
from server.storage.sql.database import Params, Row
from server.storage.sqlite.worker import SqliteWorker, connect

_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
)
_LOOP_PRAGMAS = (
    *_PRAGMAS,
    "PRAGMA busy_timeout=0",  # the loop never waits on a lock: `_patiently` retries with asyncio.sleep
    "PRAGMA wal_autocheckpoint=0",  # checkpoints fsync: the worker thread runs them (`_after_commit`)
)
_WORKER_PRAGMAS = (*_PRAGMAS, "PRAGMA busy_timeout=5000")
BUSY_SECONDS = 5.0
"""How long a statement waits for another process's write lock before the database counts as unavailable."""
CHECKPOINT_EVERY = 500
"""Commits between checkpoints: a few MiB of WAL at most."""
_UNLOCKED_PASSES = 3
_LOCKED_PASS_FRAMES = 64
"""Frames left for a checkpoint's last pass, the one with writes waiting: a millisecond or two of copying."""
_STATEMENT_CACHE = 256
_T = TypeVar("_T")
log = logging.getLogger(__name__)


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


def _fetchone(connection: sqlite3.Connection, sql: str, params: Params) -> Row | None:
    cursor = connection.execute(sql, params)
    row: Row | None = cursor.fetchone()
    cursor.close()  # an unfinished SELECT would hold its read snapshot until collected
    return row


class _Transaction:
    """Statements on the connection while the database's lock and an open transaction are held."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        return _fetchone(self._connection, sql, params)

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        return self._connection.execute(sql, params).fetchall()

    async def execute(self, sql: str, params: Params = ()) -> int:
        return self._connection.execute(sql, params).rowcount

    async def send(self, sql: str, params: Params = ()) -> None:
        self._connection.execute(sql, params)


@dataclasses.dataclass(frozen=True)
class _Workers:
    """Two threads, so a checkpoint (which holds the write lock) never waits behind a long scan."""

    scans: SqliteWorker
    checkpoints: SqliteWorker


class SqliteDatabase:
    """One connection driven on the event loop's own thread, a statement or a whole transaction at a time.

    A point read or a small write transaction on a WAL file costs tens of microseconds; handing every statement
    to a thread and back, as aiosqlite does, cost more than the statements did (0.6 ms of CPU per relayed call
    under load, `bench/RESULTS.md`). What could block the loop is kept off it:
    - lock waits: busy_timeout is 0 here, and a database another process holds locked (the operator CLI, say)
      is retried with asyncio.sleep for up to `busy_seconds`, then reported unavailable;
    - checkpoints, which fsync: off on this connection; every `checkpoint_every` commits a thread of their
      own copies the WAL while writes go on, then the little they added while writes wait, so the WAL starts over;
    - scans whose size the caller chooses (listings, exports, totals: `fetchall` outside a transaction): on
      another thread's own connection, which sees every committed write.
    """

    backend = "sqlite"
    dialect = SqliteDialect()

    def __init__(
        self,
        connection: sqlite3.Connection,
        workers: _Workers | None,
        *,
        busy_seconds: float = BUSY_SECONDS,
        checkpoint_every: int = CHECKPOINT_EVERY,
    ) -> None:
        self._connection = connection
        self._workers = workers
        self._lock = asyncio.Lock()
        self._busy_seconds = busy_seconds
        self._checkpoint_every = checkpoint_every
        self._commits = 0
        self._checkpointing: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls, database_url: str, *, busy_seconds: float = BUSY_SECONDS, checkpoint_every: int = CHECKPOINT_EVERY
    ) -> SqliteDatabase:
        path = sqlite_path(database_url)
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            connection = connect(path, _LOOP_PRAGMAS, cached_statements=_STATEMENT_CACHE)
        except sqlite3.Error as exc:
            raise UnavailableError("cannot open the sqlite database") from exc
        # A second connection to ":memory:" would be another, empty database: there, everything stays here.
        workers = None if path == ":memory:" else _Workers(SqliteWorker(path, _WORKER_PRAGMAS), SqliteWorker(path, ()))
        return cls(connection, workers, busy_seconds=busy_seconds, checkpoint_every=checkpoint_every)

    async def _patiently(self, statement: Callable[[], _T]) -> _T:
        """Runs `statement` now; while another process holds the write lock, tries again with backoff."""
        delay, deadline = 0.001, 0.0
        while True:
            try:
                return statement()
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
                    raise
                now = time.monotonic()
                deadline = deadline or now + self._busy_seconds
                if now >= deadline:
                    raise DatabaseUnavailableError("the database is busy; retry shortly", retry_after=1) from exc
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    def _after_commit(self) -> None:
        self._commits += 1
        if self._workers is None or self._commits < self._checkpoint_every or self._checkpointing is not None:
            return
        self._commits = 0
        self._checkpointing = asyncio.get_running_loop().create_task(self._checkpoint(self._workers.checkpoints))

    async def _checkpoint(self, worker: SqliteWorker) -> None:
        """Copies the WAL while writes go on, then what they added meanwhile with writes waiting (a few ms).

        The last pass must have the writes wait: once it has copied every frame, the next write starts the WAL
        over, which keeps it short. A checkpoint of the whole WAL under the lock stalled every write for 13-25 ms.
        """
        try:
            for _ in range(_UNLOCKED_PASSES):
                if await worker.checkpoint() <= _LOCKED_PASS_FRAMES:
                    break
            async with self._lock:
                await worker.checkpoint()
        except sqlite3.Error:
            log.warning("sqlite checkpoint failed; the next one retries", exc_info=True)
        finally:
            self._checkpointing = None

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[_Transaction]:
        """BEGIN IMMEDIATE … COMMIT (ROLLBACK on any exception): the write lock is taken up front."""
        async with self._lock:
            await self._patiently(lambda: self._connection.execute("BEGIN IMMEDIATE"))
            try:
                yield _Transaction(self._connection)
                self._connection.execute("COMMIT")
            except BaseException:
                if self._connection.in_transaction:
                    self._connection.execute("ROLLBACK")
                raise
            self._after_commit()

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        async with self._lock:
            return await self._patiently(lambda: _fetchone(self._connection, sql, params))

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        if self._workers is not None:
            return await self._workers.scans.fetchall(sql, params)
        async with self._lock:
            return self._connection.execute(sql, params).fetchall()

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Runs one statement in its own transaction; returns the number of rows changed."""
        async with self._lock:
            changed = await self._patiently(lambda: self._connection.execute(sql, params).rowcount)
            self._after_commit()
            return changed

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
        if self._checkpointing is not None:
            await self._checkpointing
        if self._workers is None:
            self._connection.close()
            return
        await self._workers.scans.close()
        # The last connection closed checkpoints and removes the WAL: that fsync belongs off the loop too.
        await self._workers.checkpoints.run(self._connection.close)
        await self._workers.checkpoints.close()


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
