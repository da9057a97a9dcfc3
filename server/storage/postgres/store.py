"""PostgresStore: the store for production and several replicas."""

from __future__ import annotations

from server.config import DatabaseConfig
from server.storage.postgres.database import PostgresDatabase
from server.storage.postgres.ledger import PostgresLedger
from server.storage.sql.store import SqlStore


class PostgresStore(SqlStore):
    """The SQL store on a PostgreSQL database, through a connection pool."""

    def __init__(self, database: PostgresDatabase) -> None:
        super().__init__(database)
        self.ledger = PostgresLedger(database)

    @classmethod
    async def open(cls, database_url: str, options: DatabaseConfig) -> PostgresStore:
        """Connects (DatabaseUnavailableError when the server cannot be reached within the pool timeout)."""
        return cls(await PostgresDatabase.open(database_url, options))
