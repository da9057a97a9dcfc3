"""The storage seam: what the rest of Tollgate may ask of a database."""

from __future__ import annotations

from typing import Protocol


class Store(Protocol):
    """A database with versioned schema migrations."""

    async def migrate(self) -> int:
        """Applies every pending migration in order, each in its own transaction; returns the schema version."""
        ...

    async def schema_version(self) -> int:
        """The version of the newest migration applied; 0 on an empty database."""
        ...

    async def get_setting(self, key: str) -> str | None:
        """A site-wide setting stored in the database, or None."""
        ...

    async def put_setting_if_absent(self, key: str, value: str) -> bool:
        """Stores a setting unless it exists; True if this call stored it (safe under concurrency)."""
        ...

    async def close(self) -> None:
        """Releases connections; the store is unusable afterwards."""
        ...
