"""A psycopg 3 connection pool where every statement runs in a transaction with its own timeouts.

Nothing outlives a transaction on a connection: the timeouts are `SET LOCAL` (set_config(…, true)),
no statement is prepared on the server, and migrations serialise on a transaction-level advisory
lock. So Tollgate works behind a transaction-mode pooler such as PgBouncer. A row another
transaction holds too long, a statement too slow, a pool with no free connection or a database
that cannot be reached all end the call with DatabaseUnavailableError (503) within seconds.
"""

from __future__ import annotations

import contextlib
import functools
import select
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import AsyncPipeline
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from server.config import DatabaseConfig
from server.errors import DatabaseUnavailableError
from server.storage.migrations import Migration
from server.storage.sql.database import Params, Row

_MIGRATION_LOCK = 0x7011_6A7E  # pg_advisory_xact_lock key: one process migrates at a time
_MIGRATION_TIMEOUT = 600.0  # a schema step may rewrite a large table


class PostgresDialect:
    """TIMESTAMPTZ times, JSONB lists, and row locks that an update would take.

    FOR NO KEY UPDATE, not FOR UPDATE: inserts of rows that refer to a locked one (its foreign keys take
    KEY SHARE) go on meanwhile.
    """

    lock_row = " FOR NO KEY UPDATE"

    def time(self, moment: datetime) -> datetime:
        return moment

    def from_time(self, value: Any) -> datetime:
        return value.astimezone(UTC)  # type: ignore[no-any-return]

    def from_list(self, value: Any) -> tuple[str, ...]:
        return tuple(value)


@functools.lru_cache(maxsize=512)
def _placeholders(sql: str) -> str:
    """`?` placeholders as psycopg's `%s` (a literal % doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


@contextlib.contextmanager
def _unavailable() -> Iterator[None]:
    """Timeouts and a lost or unreachable database, as the one error clients retry on."""
    try:
        yield
    except (psycopg.errors.LockNotAvailable, psycopg.errors.QueryCanceled) as exc:
        raise DatabaseUnavailableError("the database is busy; retry shortly", retry_after=1) from exc
    except (psycopg.OperationalError, PoolTimeout) as exc:
        raise DatabaseUnavailableError("the database cannot be reached; retry shortly", retry_after=1) from exc


async def _check_if_disturbed(connection: psycopg.AsyncConnection[Any]) -> None:
    """Checks a connection taken from the pool with a round trip, but only if the server said something to it.

    An idle connection hears nothing unless the server is leaving it: a terminated backend, a restart or an idle
    timeout sends its error and closes the socket. So after a restart the stale connections are replaced
    instead of failing one call each, without a round trip per transaction while nothing happens.
    """
    poller = select.poll()
    poller.register(connection.fileno(), select.POLLIN)
    if poller.poll(0):
        await AsyncConnectionPool.check_connection(connection)


_TIMEOUTS = "SELECT set_config('lock_timeout', %s, true), set_config('statement_timeout', %s, true)"


def _timeouts(lock_seconds: float, statement_seconds: float) -> tuple[str, str]:
    """The parameters of `_TIMEOUTS`: for the transaction (or implicit transaction) it runs in."""
    return f"{round(lock_seconds * 1000)}ms", f"{round(statement_seconds * 1000)}ms"


async def _queue(connection: psycopg.AsyncConnection[Any], sql: str, params: Params) -> psycopg.AsyncCursor[Any]:
    """Sends a statement; in a pipeline, its cursor has the result after the next sync."""
    if not params:  # no parameters: the text is sent as it is (outside a pipeline, several statements)
        return await connection.execute(sql)
    return await connection.execute(_placeholders(sql), params)


class _Transaction:
    """Statements on one connection inside an open transaction, pipelined when `pipeline` is given.

    In a pipeline, BEGIN and the timeouts travel with the first statement, and what is sent without waiting
    (`send`) with the next statement or the commit: one round trip for each statement whose answer is read,
    and one for the commit.
    """

    def __init__(self, connection: psycopg.AsyncConnection[Any], pipeline: AsyncPipeline | None) -> None:
        self._connection = connection
        self._pipeline = pipeline

    async def _run(self, sql: str, params: Params) -> psycopg.AsyncCursor[Any]:
        cursor = await _queue(self._connection, sql, params)
        if self._pipeline is not None:
            await self._pipeline.sync()
        return cursor

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        return await (await self._run(sql, params)).fetchone()

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        return await (await self._run(sql, params)).fetchall()

    async def execute(self, sql: str, params: Params = ()) -> int:
        return (await self._run(sql, params)).rowcount

    async def send(self, sql: str, params: Params = ()) -> None:
        await _queue(self._connection, sql, params)  # in a pipeline, it waits for the next sync or the commit


class PostgresDatabase:
    """Database on a PostgreSQL server, through a pool of autocommit connections."""

    backend = "postgres"
    dialect = PostgresDialect()

    def __init__(self, pool: AsyncConnectionPool[Any], options: DatabaseConfig) -> None:
        self._pool = pool
        self._timeouts = _timeouts(options.lock_timeout_seconds, options.statement_timeout_seconds)

    @classmethod
    async def open(cls, database_url: str, options: DatabaseConfig) -> PostgresDatabase:
        """Opens the pool; DatabaseUnavailableError if no connection opens within the pool timeout."""
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            database_url,
            min_size=1,
            max_size=options.pool_size,
            timeout=options.pool_timeout_seconds,
            kwargs={
                "autocommit": True,
                "prepare_threshold": None,
                "connect_timeout": max(1, round(options.pool_timeout_seconds)),
            },
            open=False,
            name="tollgate",
            check=_check_if_disturbed,
        )
        try:
            with _unavailable():
                await pool.open(wait=True, timeout=options.pool_timeout_seconds)
        except BaseException:
            await pool.close()
            raise
        return cls(pool, options)

    def transaction(self) -> contextlib.AbstractAsyncContextManager[_Transaction]:
        """BEGIN … COMMIT with lock and statement timeouts set for this transaction only."""
        return self._transaction(self._timeouts)

    @contextlib.asynccontextmanager
    async def _transaction(self, timeouts: tuple[str, str], *, pipelined: bool = True) -> AsyncIterator[_Transaction]:
        """BEGIN and COMMIT are statements of their own, not psycopg's transaction block: in a pipeline, that block
        waits for the server at BEGIN, before the COMMIT, at the COMMIT and at the pipeline's end."""
        with _unavailable():
            # On an exception the pooled connection's own context rolls back whatever the block began.
            async with self._pool.connection() as connection:
                pipeline = connection.pipeline() if pipelined else contextlib.nullcontext(None)
                async with pipeline as piped:
                    await connection.execute("BEGIN")
                    await connection.execute(_TIMEOUTS, timeouts)
                    yield _Transaction(connection, piped)
                    await connection.execute("COMMIT")

    async def _alone(self, sql: str, params: Params) -> psycopg.AsyncCursor[Any]:
        """One statement and its timeouts in one round trip, without BEGIN or COMMIT: statements sent together in
        a pipeline run in one implicit transaction, which the sync commits (or rolls back, on an error)."""
        with _unavailable():
            async with self._pool.connection() as connection, connection.pipeline():
                await connection.execute(_TIMEOUTS, self._timeouts)
                return await _queue(connection, sql, params)

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        return await (await self._alone(sql, params)).fetchone()

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        return await (await self._alone(sql, params)).fetchall()

    async def execute(self, sql: str, params: Params = ()) -> int:
        return (await self._alone(sql, params)).rowcount

    async def apply_migrations(self, migrations: Sequence[Migration]) -> None:
        for migration in migrations:
            # Not pipelined: a migration is a script of several statements.
            async with self._transaction(_timeouts(_MIGRATION_TIMEOUT, _MIGRATION_TIMEOUT), pipelined=False) as tx:
                await tx.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))
                await tx.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                    " name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
                )
                if await tx.fetchone("SELECT 1 FROM schema_migrations WHERE version = ?", (migration.version,)):
                    continue
                await tx.execute(migration.sql)
                await tx.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (?, ?)", (migration.version, migration.name)
                )

    async def schema_version(self) -> int:
        async with self.transaction() as tx:
            if await tx.fetchone("SELECT to_regclass('schema_migrations') IS NULL") == (True,):
                return 0
            row = await tx.fetchone("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
        return int(row[0]) if row else 0

    async def close(self) -> None:
        await self._pool.close()
