"""SQLite storage: URLs and files (what every backend shares is in test_storage_contract)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from server.errors import DatabaseUnavailableError, InvalidArgumentError
from server.storage.sqlite import SqliteStore, sqlite_path
from server.storage.sqlite.database import SqliteDatabase


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


async def _ticking(ticks: list[int]) -> None:
    while True:
        await asyncio.sleep(0.005)
        ticks.append(1)


async def test_a_write_waits_out_another_process_lock_while_the_loop_runs(tmp_path: Path) -> None:
    db = await SqliteDatabase.open(f"sqlite:///{tmp_path}/t.db")
    await db.execute("CREATE TABLE t (v INTEGER)")
    other = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # what the operator CLI does while it credits an account
    ticks: list[int] = []
    ticker = asyncio.create_task(_ticking(ticks))
    single = asyncio.create_task(db.execute("INSERT INTO t VALUES (1)"))
    await asyncio.sleep(0.3)
    assert not single.done()
    assert len(ticks) >= 10  # the statement waits with asyncio.sleep, not on the loop's thread
    other.execute("COMMIT")
    assert await asyncio.wait_for(single, 2) == 1
    ticker.cancel()
    other.close()
    assert await db.fetchall("SELECT v FROM t") == [(1,)]
    await db.close()


@pytest.mark.parametrize("in_transaction", [False, True])
async def test_a_lock_held_too_long_is_unavailable_and_nothing_is_written(tmp_path: Path, in_transaction: bool) -> None:
    db = await SqliteDatabase.open(f"sqlite:///{tmp_path}/t.db", busy_seconds=0.2)
    await db.execute("CREATE TABLE t (v INTEGER)")
    other = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    with pytest.raises(DatabaseUnavailableError):
        if in_transaction:
            async with db.transaction() as tx:
                await tx.execute("INSERT INTO t VALUES (1)")
        else:
            await db.execute("INSERT INTO t VALUES (1)")
    other.execute("ROLLBACK")
    other.close()
    assert await db.fetchall("SELECT v FROM t") == []
    await db.execute("INSERT INTO t VALUES (2)")  # the connection is left usable
    assert await db.fetchall("SELECT v FROM t") == [(2,)]
    await db.close()


async def _wal_bytes_after_commits(tmp_path: Path, checkpoint_every: int, commits: int) -> int:
    db = await SqliteDatabase.open(f"sqlite:///{tmp_path}/t.db", checkpoint_every=checkpoint_every)
    await db.execute("CREATE TABLE t (v BLOB)")
    for _ in range(commits):
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO t VALUES (?)", (b"x" * 3000,))
        await asyncio.sleep(0)  # requests yield between commits; the checkpoint runs there
    size = (tmp_path / "t.db-wal").stat().st_size
    assert (await db.fetchone("SELECT COUNT(*) FROM t")) == (commits,)
    await db.close()
    assert not (tmp_path / "t.db-wal").exists()  # the last connection out checkpoints and removes it
    return size


async def test_checkpoints_keep_the_wal_short(tmp_path: Path) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
    checkpointed = await _wal_bytes_after_commits(tmp_path / "a", checkpoint_every=20, commits=900)
    unchecked = await _wal_bytes_after_commits(tmp_path / "b", checkpoint_every=10_000, commits=900)
    assert unchecked > 900 * 4096  # a frame per commit at least: without checkpoints the WAL only grows
    # It starts over after every checkpoint: its size is the commits between two, and those written while the
    # checkpoint copied (here as fast as a loop can write), whatever the number of commits in all.
    assert checkpointed < unchecked / 3, (checkpointed, unchecked)


async def test_writes_go_on_while_a_checkpoint_copies_the_wal(tmp_path: Path) -> None:
    db = await SqliteDatabase.open(f"sqlite:///{tmp_path}/t.db", checkpoint_every=2000)
    await db.execute("CREATE TABLE t (v BLOB)")
    for _ in range(1999):  # with the table's creation, the 2,000th commit sets off a checkpoint of about 20 MB
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO t VALUES (?)", (b"x" * 10_000,))
    checkpoint = db._checkpointing
    assert checkpoint is not None
    await asyncio.sleep(0.005)  # the checkpoint has started copying
    async with db.transaction() as tx:
        await tx.execute("INSERT INTO t VALUES (?)", (b"written during the checkpoint",))
    assert not checkpoint.done()  # the write did not wait for the copy
    await checkpoint
    assert (await db.fetchone("SELECT COUNT(*) FROM t")) == (2000,)
    await db.close()


async def test_an_in_memory_database_keeps_everything_on_one_connection() -> None:
    store = await SqliteStore.open("sqlite://:memory:")
    await store.migrate()
    assert await store.accounts.list_accounts("", 10) == []
    await store.close()
