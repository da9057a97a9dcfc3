"""PostgreSQL only: a stuck row, a slow statement, a full pool or a lost server is a 503 within seconds."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import openai
import psycopg
import pytest

from server.bootstrap import open_store
from server.config import DatabaseConfig
from server.domain.records import Account
from server.errors import DatabaseUnavailableError
from server.storage.base import Store
from server.storage.postgres import PostgresStore
from tests.support.relay_env import relay_env

NOW = datetime.now(UTC)


@pytest.fixture
async def store(postgres_url: str) -> AsyncIterator[Store]:
    opened = await open_store(postgres_url)
    await opened.accounts.insert_account(Account("acc_1", "user", False, 0, 0, "1", NOW), "hash")
    yield opened
    await opened.close()


@pytest.fixture
def locked_accounts(postgres_url: str, store: Store) -> Iterator[None]:
    """Another transaction holds every account row until the test ends."""
    with psycopg.connect(postgres_url) as other:
        other.execute("SELECT id FROM accounts FOR UPDATE")
        yield
        other.rollback()


def test_money_columns_are_bigint_and_nothing_is_a_float(postgres_url: str, store: Store) -> None:
    with psycopg.connect(postgres_url) as connection:
        columns = connection.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = current_schema()"
        ).fetchall()
    money = {(table, column): kind for table, column, kind in columns if column.endswith("_micros")}
    assert len(money) >= 9 and set(money.values()) == {"bigint"}, money
    assert not [c for c in columns if c[2] in ("real", "double precision", "numeric", "money")]


@pytest.mark.parametrize(("lock", "statement"), [(1.0, 30.0), (30.0, 1.0)])
async def test_a_locked_row_is_unavailable_within_seconds(
    postgres_url: str, store: Store, lock: float, statement: float
) -> None:
    options = DatabaseConfig(lock_timeout_seconds=lock, statement_timeout_seconds=statement)
    impatient = await PostgresStore.open(postgres_url, options)
    try:
        with psycopg.connect(postgres_url) as other:
            other.execute("SELECT id FROM accounts FOR UPDATE")
            started = time.monotonic()
            with pytest.raises(DatabaseUnavailableError, match="busy"):
                await impatient.accounts.set_account_disabled("acc_1", True)
            assert time.monotonic() - started < 3
    finally:
        await impatient.close()


async def test_a_full_pool_is_unavailable_within_its_timeout(postgres_url: str, locked_accounts: None) -> None:
    options = DatabaseConfig(pool_size=1, pool_timeout_seconds=0.5, lock_timeout_seconds=5)
    tiny = await PostgresStore.open(postgres_url, options)
    try:
        stuck = asyncio.create_task(tiny.accounts.set_account_disabled("acc_1", True))  # takes the only connection
        await asyncio.sleep(0.2)
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailableError, match="cannot be reached"):
            await tiny.get_setting("anything")
        assert time.monotonic() - started < 2
        with pytest.raises(DatabaseUnavailableError):
            await stuck
    finally:
        await tiny.close()


async def test_an_unreachable_server_is_unavailable_within_the_pool_timeout() -> None:
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailableError):
        await PostgresStore.open("postgresql://postgres@127.0.0.1:1/none", DatabaseConfig(pool_timeout_seconds=1))
    assert time.monotonic() - started < 4


async def test_a_held_account_row_answers_503_then_recovers(tmp_path: Path, postgres_url: str) -> None:
    fast = {"TOLLGATE_DATABASE_LOCK_TIMEOUT_SECONDS": "1"}
    async with relay_env(tmp_path, database=postgres_url, environ=fast) as env, env.client() as client:
        ask = {"model": "deepseek-chat", "messages": [{"role": "user", "content": "hi"}]}
        with psycopg.connect(postgres_url) as other:
            other.execute("SELECT id FROM accounts FOR UPDATE")
            started = time.monotonic()
            with pytest.raises(openai.APIStatusError) as caught:
                await client.chat.completions.create(**ask)  # type: ignore[call-overload]
            assert time.monotonic() - started < 5
            assert (caught.value.status_code, caught.value.code) == (503, "database_unavailable")
        answer = await client.chat.completions.create(**ask)  # type: ignore[call-overload]
        assert answer.choices[0].message.content


async def test_a_lost_pooled_connection_is_replaced_before_a_call_uses_it(postgres_url: str, store: Store) -> None:
    name = f"lost-{uuid.uuid4().hex[:8]}"
    victim = await PostgresStore.open(f"{postgres_url}&application_name={name}", DatabaseConfig(pool_size=1))
    try:
        assert await victim.get_setting("k") is None
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            (killed,) = admin.execute(
                # waits (up to 5 s) until the backend has gone and closed its side, as after a restart
                "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity WHERE application_name = %s",
                (name,),
            ).fetchone() or (0,)
        assert killed == 1
        assert await victim.get_setting("k") is None  # the pool saw the dead connection and replaced it
        assert await victim.put_setting_if_absent("k", "back")
    finally:
        await victim.close()
