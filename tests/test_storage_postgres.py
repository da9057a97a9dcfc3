"""PostgreSQL only: a stuck row, a slow statement, a full pool or a lost server is a 503 within seconds; the
round trips a call's ledger writes cost; a hold locks no row across a round trip."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import openai
import psycopg
import pytest

from server.bootstrap import open_store
from server.config import DatabaseConfig
from server.domain.records import Account, ApiToken, Funds, Hold, Movement, UsageRecord
from server.errors import DatabaseUnavailableError
from server.storage.base import Store
from server.storage.postgres import PostgresStore
from tests.support.relay_env import relay_env
from tests.support.round_trips import RoundTrips, counting_round_trips

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
                await impatient.accounts.update_account("acc_1", {"disabled": True})
            assert time.monotonic() - started < 3
    finally:
        await impatient.close()


async def test_a_full_pool_is_unavailable_within_its_timeout(postgres_url: str, locked_accounts: None) -> None:
    options = DatabaseConfig(pool_size=1, pool_timeout_seconds=0.5, lock_timeout_seconds=5)
    tiny = await PostgresStore.open(postgres_url, options)
    try:
        stuck = asyncio.create_task(
            tiny.accounts.update_account("acc_1", {"disabled": True})
        )  # takes the only connection
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


async def _funded_token(store: Store) -> None:
    token = ApiToken(
        name="app", spend_cap_micros=0, expires_at=None, allowed_models=(), allowed_ips=(), max_concurrency=0,
        requests_per_minute=0, tokens_per_minute=0, disabled=False, id="tok_1", account_id="acc_1",
        key_hash="hash-tok_1", masked_key="sk-…tok1", spent_micros=0, created_at=NOW, last_used_at=None,
    )  # fmt: skip
    await store.tokens.insert_token(token)
    assert await store.accounts.apply_movement(Movement("led_1", "acc_1", 10_000, "operator", "setup", "k", "fp", NOW))


def _hold(request_id: str, amount: int) -> Hold:
    return Hold(request_id, "acc_1", "tok_1", amount, NOW, NOW + timedelta(hours=1))


def _usage(request_id: str, cost: int) -> UsageRecord:
    return UsageRecord(
        f"use_{request_id}", request_id, "acc_1", "tok_1", "app", "deepseek-chat", "deepseek-chat", "deepseek",
        False, 10, 0, 0, 5, 0, cost, False, "ok", 120, None, "127.0.0.1", NOW,
    )  # fmt: skip


async def test_a_hold_takes_two_round_trips_then_one_and_a_settlement_or_a_lone_statement_one(
    postgres_url: str, store: Store
) -> None:
    await _funded_token(store)
    async with counting_round_trips(postgres_url) as (url, trips):
        relayed = await PostgresStore.open(url, DatabaseConfig(pool_size=1))
        try:
            assert await relayed.get_setting("warm") is None  # the pool's connection is open and idle
            before = trips.count
            assert await relayed.ledger.place_hold("acc_1", "tok_1", lambda funds: _hold("req_1", 4_000))
            assert trips.count - before == 2  # the read, then the writes that check it again, with the commit
            before = trips.count
            assert await relayed.ledger.settle(_hold("req_1", 4_000), 1_500, _usage("req_1", 1_500))
            assert trips.count - before == 1
            before = trips.count
            assert not await relayed.ledger.settle(_hold("req_1", 4_000), 1_500, _usage("req_1", 1_500))
            assert await relayed.get_setting("k") is None
            assert trips.count - before == 2
            before = trips.count  # the account's discount is known now: the checked writes alone
            assert await relayed.ledger.place_hold("acc_1", "tok_1", lambda funds: _hold("req_2", 500))
            assert trips.count - before == 1
        finally:
            await relayed.close()
    account = await store.accounts.get_account("acc_1")
    assert account is not None and (account.balance_micros, account.held_micros) == (8_500, 500)


async def _sized_holds(store: Store, request_id: str, wanted: int) -> tuple[bool, list[Funds | None]]:
    """Places a hold of `wanted`, or of what the funds it is sized from can pay; and the funds it was sized from."""
    seen: list[Funds | None] = []

    def size(funds: Funds | None) -> Hold:
        assert funds is not None
        seen.append(funds)
        return _hold(request_id, min(wanted, funds.budget_micros))

    return await store.ledger.place_hold("acc_1", "tok_1", size), seen


@contextlib.asynccontextmanager
async def _counted(postgres_url: str) -> AsyncIterator[tuple[Store, RoundTrips]]:
    """A store whose round trips to the server are counted."""
    async with counting_round_trips(postgres_url) as (url, trips):
        counted = await PostgresStore.open(url, DatabaseConfig(pool_size=1))
        try:
            yield counted, trips
        finally:
            await counted.close()


@pytest.mark.parametrize(("held_meanwhile", "wanted", "round_trips"), [(8_000, 5_000, 3), (0, 50_000, 2)])
async def test_a_hold_sized_as_if_the_funds_were_ample_is_sized_again_from_them_when_they_are_not(
    postgres_url: str, store: Store, held_meanwhile: int, wanted: int, round_trips: int
) -> None:
    """Written at once while the funds last read pay for it (the write refuses it if they no longer do), else after
    a read."""
    await _funded_token(store)
    async with _counted(postgres_url) as (counted, trips):
        assert await _sized_holds(counted, "req_1", 1_000) == (True, [Funds(10_000, None, "1")])
        with psycopg.connect(postgres_url, autocommit=True) as other:
            other.execute("UPDATE accounts SET held_micros = held_micros + %s WHERE id = 'acc_1'", [held_meanwhile])
        before = trips.count
        placed, seen = await _sized_holds(counted, "req_2", wanted)
        assert trips.count - before == round_trips
    left = 9_000 - held_meanwhile
    assert placed and len(seen) == 2 and seen[0] is not None and seen[0].budget_micros > 10**15
    assert seen[1] == Funds(left, None, "1")
    account = await store.accounts.get_account("acc_1")
    assert account is not None and account.held_micros == 10_000  # what was left, held in full


async def test_a_hold_at_a_remembered_discount_that_changed_is_sized_at_the_new_one(
    postgres_url: str, store: Store
) -> None:
    await _funded_token(store)
    assert await _sized_holds(store, "req_1", 1_000) == (True, [Funds(10_000, None, "1")])
    with psycopg.connect(postgres_url, autocommit=True) as other:
        other.execute("UPDATE accounts SET discount = '0.8' WHERE id = 'acc_1'")
    placed, seen = await _sized_holds(store, "req_2", 1_000)
    assert placed and [funds.discount for funds in seen if funds is not None] == ["1", "0.8"]
    assert seen[1] == Funds(9_000, None, "0.8")


async def test_a_hold_reads_its_funds_without_locking_them(postgres_url: str, store: Store) -> None:
    """A row locked elsewhere stops only the hold's write, which locks the rows and checks the funds again."""
    await _funded_token(store)
    impatient = await PostgresStore.open(postgres_url, DatabaseConfig(lock_timeout_seconds=1))
    seen: list[Funds | None] = []

    def size(funds: Funds | None) -> Hold:
        seen.append(funds)
        return _hold("req_1", 4_000)

    try:
        with psycopg.connect(postgres_url) as other:
            other.execute("SELECT id FROM accounts FOR UPDATE")
            with pytest.raises(DatabaseUnavailableError, match="busy"):
                await impatient.ledger.place_hold("acc_1", "tok_1", size)
            other.rollback()
    finally:
        await impatient.close()
    assert seen == [Funds(10_000, None, "1")]
    account = await store.accounts.get_account("acc_1")
    assert account is not None and account.held_micros == 0


@pytest.mark.parametrize(("held_meanwhile", "sized"), [(1_000, 1), (3_000, 2)])
async def test_a_hold_is_checked_against_the_funds_when_it_writes_and_sized_again_if_they_shrank(
    postgres_url: str, store: Store, held_meanwhile: int, sized: int
) -> None:
    await _funded_token(store)
    seen: list[Funds | None] = []

    def size(funds: Funds | None) -> Hold:
        assert funds is not None
        seen.append(funds)
        if len(seen) == 1:  # another replica's hold lands between this hold's read and its write
            with psycopg.connect(postgres_url, autocommit=True) as other:
                other.execute("UPDATE accounts SET held_micros = held_micros + %s WHERE id = 'acc_1'", [held_meanwhile])
        return _hold("req_1", min(8_000, funds.budget_micros))

    assert await store.ledger.place_hold("acc_1", "tok_1", size)
    assert seen == [Funds(10_000, None, "1"), Funds(10_000 - held_meanwhile, None, "1")][:sized]
    account = await store.accounts.get_account("acc_1")
    placed = 8_000 if sized == 1 else 10_000 - held_meanwhile  # still covered, or sized again from what is left
    assert account is not None and account.held_micros == held_meanwhile + placed <= account.balance_micros
