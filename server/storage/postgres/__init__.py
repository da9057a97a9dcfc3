"""PostgreSQL storage (psycopg 3, async pool), for production and several replicas."""

from server.storage.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
