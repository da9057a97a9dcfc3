"""SQLite storage: URLs, migrations applied once (also by two processes at once), settings."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from server.errors import InvalidArgumentError
from server.storage.migrations import load_migrations
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


async def test_migrate_creates_folder_and_is_idempotent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/nested/dir/t.db"
    store = await SqliteStore.open(url)
    try:
        assert await store.schema_version() == 0
        newest = len(load_migrations("sqlite"))
        assert await store.migrate() == newest
        assert await store.migrate() == newest
    finally:
        await store.close()
    assert (tmp_path / "nested" / "dir" / "t.db").exists()


async def test_concurrent_migrations_apply_each_step_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/t.db"
    stores = [await SqliteStore.open(url) for _ in range(4)]
    try:
        versions = await asyncio.gather(*(store.migrate() for store in stores))
        assert set(versions) == {len(load_migrations("sqlite"))}
    finally:
        for store in stores:
            await store.close()


async def test_settings_are_stored_once(tmp_path: Path) -> None:
    store = await SqliteStore.open(f"sqlite:///{tmp_path}/t.db")
    try:
        await store.migrate()
        assert await store.get_setting("k") is None
        assert await store.put_setting_if_absent("k", "first") is True
        assert await store.put_setting_if_absent("k", "second") is False
        assert await store.get_setting("k") == "first"
    finally:
        await store.close()


def test_migrations_are_numbered_without_gaps() -> None:
    migrations = load_migrations("sqlite")
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert migrations[0].name == "initial"
