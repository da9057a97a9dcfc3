"""SQLite storage, the embedded default."""

from server.storage.sqlite.database import sqlite_path
from server.storage.sqlite.store import SqliteStore

__all__ = ["SqliteStore", "sqlite_path"]
