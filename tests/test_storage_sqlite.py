"""SQLite storage: URLs and files (what every backend shares is in test_storage_contract)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from server.errors import InvalidArgumentError
from server.storage.sqlite import SqliteStore, sqlite_path


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///data/tollgate.db", "data/tollgate.db"),
        ("sqlite:////var/lib/tollgate.db", "/var/lib/tollgate.db"),
        ("sqlite://:memory:", ":memory:"),
    ],
)
def test_sqlite_path(url: str, path: str) -> None:
    assert sqlite_path(url) == path


@pytest.mark.parametrize("url", ["postgresql://x/y", "sqlite://", "sqlite:///"])
def test_sqlite_path_rejects(url: str) -> None:
    with pytest.raises(InvalidArgumentError):
        sqlite_path(url)


async def test_open_creates_the_folder(tmp_path: Path) -> None:
    store = await SqliteStore.open(f"sqlite:///{tmp_path}/nested/dir/t.db")
    await store.close()
    assert (tmp_path / "nested" / "dir" / "t.db").exists()


async def test_money_columns_are_integers_and_nothing_is_a_float(tmp_path: Path) -> None:
    store = await SqliteStore.open(f"sqlite:///{tmp_path}/t.db")
    await store.migrate()
    await store.close()
    with sqlite3.connect(tmp_path / "t.db") as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        columns = [(t, *row[1:3]) for t in tables for row in db.execute(f"PRAGMA table_info({t})")]
    money = {(table, name): kind for table, name, kind in columns if name.endswith("_micros")}
    assert len(money) >= 9 and set(money.values()) == {"INTEGER"}, money
    assert not [c for c in columns if c[2] in ("REAL", "FLOAT", "DOUBLE", "NUMERIC")]
