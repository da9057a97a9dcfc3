"""SqliteStore: the embedded default store, one file in WAL mode."""

from __future__ import annotations

from server.storage.sql.store import SqlStore
from server.storage.sqlite.database import SqliteDatabase


class SqliteStore(SqlStore):
    """The SQL store on one SQLite file."""

    @classmethod
    async def open(cls, database_url: str) -> SqliteStore:
        """Opens (creating it and its folder if needed) the database of the URL."""
        return cls(await SqliteDatabase.open(database_url))
