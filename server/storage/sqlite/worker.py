"""SQLite work that may take long, on a thread of its own: scans, or checkpoints.

A worker owns a connection of its own to the file. In WAL mode it reads the last committed state without
waiting for, or holding up, the writes of the event loop's connection.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from server.storage.sql.database import Params, Row

_T = TypeVar("_T")


def connect(path: str, pragmas: tuple[str, ...], *, cached_statements: int = 128) -> sqlite3.Connection:
    """An autocommit connection usable from any thread (each is used by one at a time), its pragmas applied."""
    connection = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, cached_statements=cached_statements
    )
    for pragma in pragmas:
        connection.execute(pragma)
    return connection


class SqliteWorker:
    """One thread and one connection; calls run one at a time, in the order they were made."""

    def __init__(self, path: str, pragmas: tuple[str, ...]) -> None:
        self._path = path
        self._pragmas = pragmas
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tollgate-sqlite")
        self._connection: sqlite3.Connection | None = None

    async def _run(self, call: Callable[[sqlite3.Connection], _T]) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._on_thread, call)

    def _on_thread(self, call: Callable[[sqlite3.Connection], _T]) -> _T:
        if self._connection is None:
            self._connection = connect(self._path, self._pragmas)
        return call(self._connection)

    async def fetchall(self, sql: str, params: Params) -> list[Row]:
        return await self._run(lambda connection: connection.execute(sql, params).fetchall())

    async def checkpoint(self) -> int:
        """Copies the WAL into the database file (a PASSIVE checkpoint: it waits for no one, then fsyncs).

        Returns the frames it left in the WAL: those written meanwhile, or held by a reader's snapshot.
        """
        row = await self._run(lambda connection: connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone())
        _, frames, copied = row
        return max(0, int(frames) - int(copied))

    async def run(self, call: Callable[[], _T]) -> _T:
        """Any blocking call (closing a connection, say) on this thread."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def close(self) -> None:
        if self._connection is not None:
            await self.run(self._connection.close)
            self._connection = None
        self._executor.shutdown(wait=True)
