"""SQLite storage: URLs and files (what every backend shares is in test_storage_contract)."""

from __future__ import annotations

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
