"""What the SQL roles need of a database; SQLite and PostgreSQL each provide it.

Statements are written once, with `?` placeholders, in the SQL both engines understand; a backend
translates the placeholders and says how it stores times and lists (its `Dialect`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Protocol

from server.storage.migrations import Migration

Row = Sequence[Any]
Params = Sequence[Any]


def set_clause(changes: Mapping[str, Any], columns: Collection[str], what: str) -> str:
    """`a = ?, b = ?` for the keys of `changes`, each one of `columns`: a caller's text never reaches the SQL."""
    unknown = set(changes) - set(columns)
    if unknown:
        raise ValueError(f"not {what}: {sorted(unknown)}")
    return ", ".join(f"{column} = ?" for column in changes)


class Statements(Protocol):
    """Runs statements with `?` placeholders, alone or inside one transaction."""

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None: ...

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]: ...

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Runs one statement; returns the number of rows it changed."""
        ...


class Transaction(Statements, Protocol):
    """Statements inside one transaction, and those whose outcome nobody reads."""

    async def send(self, sql: str, params: Params = ()) -> None:
        """Runs one statement whose result is not needed: where the backend pipelines, it travels with the next
        statement or the commit, and if it fails, that ends the transaction there (rolled back, as always)."""
        ...


class Dialect(Protocol):
    """How a backend stores the values SQL has no common type for."""

    lock_row: str
    """Appended to a SELECT to lock the rows it reads until the transaction ends, as an update of them would (empty
    where writes are serial); a join's rows are locked table by table in the order of its FROM."""

    def time(self, moment: datetime) -> Any:
        """A datetime as a parameter."""
        ...

    def from_time(self, value: Any) -> datetime:
        """A stored time as an aware UTC datetime."""
        ...

    def from_list(self, value: Any) -> tuple[str, ...]:
        """A stored JSON list of strings (written as JSON text)."""
        ...


class Database(Statements, Protocol):
    """A connection (or pool) with transactions and versioned migrations."""

    @property
    def backend(self) -> str:
        """The folder of this backend's migrations: sqlite or postgres."""
        ...

    @property
    def dialect(self) -> Dialect: ...

    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """All statements inside commit together, or none does (on any exception)."""
        ...

    async def apply_migrations(self, migrations: Sequence[Migration]) -> None:
        """Applies the ones not applied yet, each once even when several processes start together."""
        ...

    async def schema_version(self) -> int: ...

    async def close(self) -> None: ...
