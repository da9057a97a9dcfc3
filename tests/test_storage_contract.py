"""The storage contract: every Store backend (SQLite and PostgreSQL) passes the same tests."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from server.bootstrap import open_store
from server.config import DatabaseConfig
from server.domain.records import Account, ApiToken, Funds, Hold, Movement, Session, UsageRecord
from server.storage.base import Store
from server.storage.migrations import load_migrations
from server.storage.postgres import PostgresStore
from server.storage.postgres.database import PostgresDatabase
from server.storage.sql.database import Database
from server.storage.sql.store import SqlStore
from server.storage.sqlite import SqliteStore
from server.storage.sqlite.database import SqliteDatabase

NOW = datetime(2026, 11, 29, 4, 0, 0, 123456, tzinfo=UTC)
OPTIONS = DatabaseConfig(pool_size=20)


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/t.db"
    return str(request.getfixturevalue("postgres_url"))


async def _unmigrated(url: str) -> Store:
    if url.startswith("sqlite:"):
        return await SqliteStore.open(url)
    return await PostgresStore.open(url, OPTIONS)


@pytest.fixture
async def store(url: str) -> AsyncIterator[Store]:
    opened = await open_store(url, OPTIONS)
    yield opened
    await opened.close()


def _account(account_id: str, balance: int = 0, *, name: str = "") -> Account:
    return Account(account_id, name or account_id, False, balance, 0, "1", NOW)


def _token(token_id: str, account_id: str, cap: int = 0) -> ApiToken:
    return ApiToken(
        name="app",
        spend_cap_micros=cap,
        expires_at=NOW + timedelta(days=30),
        allowed_models=("deepseek-chat",),
        allowed_ips=("10.0.0.0/8", "::1"),
        max_concurrency=3,
        requests_per_minute=60,
        tokens_per_minute=10_000,
        disabled=False,
        id=token_id,
        account_id=account_id,
        key_hash=f"hash-{token_id}",
        masked_key="sk-…abcd",
        spent_micros=0,
        created_at=NOW,
        last_used_at=None,
    )


def _hold(request_id: str, amount: int, *, expires: datetime = NOW + timedelta(hours=1)) -> Hold:
    return Hold(request_id, "acc_1", "tok_1", amount, NOW, expires)


def _usage(request_id: str, cost: int) -> UsageRecord:
    return UsageRecord(
        f"use_{request_id}", request_id, "acc_1", "tok_1", "app", "deepseek-chat", "deepseek-chat", "deepseek",
        True, 10, 2, 0, 5, 1, cost, False, "ok", 120, 40, "127.0.0.1", NOW,
    )  # fmt: skip


async def _place(store: Store, hold: Hold) -> bool:
    return await store.ledger.place_hold(hold.account_id, hold.token_id, lambda funds: hold)


async def _funds(store: Store, token_id: str = "tok_1") -> Funds | None:
    """The funds a hold is sized from last, asking each time for one micro-dollar more than they hold."""
    seen: list[Funds | None] = []

    def peek(funds: Funds | None) -> Hold:
        seen.append(funds)
        return _hold("req_peek", 1 + (funds.budget_micros if funds else 0))

    assert not await store.ledger.place_hold("acc_1", token_id, peek)
    return seen[-1]


async def _funded(store: Store, balance: int, cap: int = 0) -> None:
    assert await store.accounts.insert_account(_account("acc_1", name="user"), "argon2-hash")
    await store.tokens.insert_token(_token("tok_1", "acc_1", cap))
    credit = Movement("led_1", "acc_1", balance, "operator", "setup", "setup-key", "fp", NOW)
    assert await store.accounts.apply_movement(credit) is not None


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_migrations_are_numbered_without_gaps(backend: str) -> None:
    migrations = load_migrations(backend)
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert migrations[0].name == "initial"


async def test_migrations_apply_once_and_concurrently(url: str) -> None:
    newest = len(load_migrations("sqlite" if url.startswith("sqlite:") else "postgres"))
    stores = [await _unmigrated(url) for _ in range(4)]
    try:
        assert await stores[0].schema_version() == 0
        assert await asyncio.gather(*(store.migrate() for store in stores)) == [newest] * 4
        assert await stores[0].migrate() == newest
    finally:
        for store in stores:
            await store.close()


async def _settle_as_the_release_before(database: Database, store: SqlStore, request_id: str, charge: int) -> None:
    """A settlement as the release before wrote it: the hold kept, marked settled, and a ledger entry for the charge."""
    assert await store.ledger.settle(_hold(request_id, 5_000), charge, _usage(request_id, charge))
    time = database.dialect.time
    await database.execute(
        "INSERT INTO holds (request_id, account_id, token_id, amount_micros, created_at, expires_at, settled_at)"
        " VALUES (?, 'acc_1', 'tok_1', 5000, ?, ?, ?)",
        (request_id, time(NOW), time(NOW + timedelta(hours=1)), time(NOW)),
    )
    await database.execute(
        "INSERT INTO ledger_entries (id, account_id, amount_micros, kind, actor, reason, created_at, request_id)"
        " VALUES (?, 'acc_1', ?, 'charge', 'tok_1', 'deepseek-chat call', ?, ?)",
        (f"led_{request_id}", -charge, time(NOW), request_id),
    )


@contextlib.asynccontextmanager
async def _schema_before(url: str, migration: str) -> AsyncIterator[tuple[Database, SqlStore, int]]:
    """A database migrated up to the named migration, not included, and the newest version; closed on exit."""
    backend = "sqlite" if url.startswith("sqlite:") else "postgres"
    migrations = load_migrations(backend)
    upgrade = next(m.version for m in migrations if m.name == migration)
    database = await (SqliteDatabase.open(url) if backend == "sqlite" else PostgresDatabase.open(url, OPTIONS))
    store = SqlStore(database)
    try:
        await database.apply_migrations([m for m in migrations if m.version < upgrade])
        yield database, store, migrations[-1].version
    finally:
        await store.close()


async def test_the_upgrade_to_one_row_per_charge_keeps_open_holds_and_every_balance(url: str) -> None:
    """Before it, a settled hold stayed behind and its charge was also a ledger entry beside the usage row."""
    async with _schema_before(url, "one_row_per_charge") as (database, store, newest):
        await _funded(store, 10_000)
        assert await _place(store, _hold("req_open", 500))
        assert await _place(store, _hold("req_done", 5_000))
        await _settle_as_the_release_before(database, store, "req_done", 1_234)
        assert await store.migrate() == newest
        assert await database.fetchone("SELECT COUNT(*) FROM ledger_entries WHERE kind = 'charge'") == (0,)
        # A replica of the release before, still running during a rolling upgrade, settles one more call.
        assert await _place(store, _hold("req_late", 5_000))
        await _settle_as_the_release_before(database, store, "req_late", 66)
        later = NOW + timedelta(days=1)
        assert [hold.request_id for hold in await store.ledger.expired_holds(later, 10)] == ["req_open"]
        for settled in ("req_done", "req_late"):
            assert not await store.ledger.settle(_hold(settled, 5_000), 99, _usage(settled, 99))
        assert await store.ledger.settle(_hold("req_open", 500), 100, _usage("req_open", 100))
        account = await store.accounts.get_account("acc_1")
        assert account is not None and (account.balance_micros, account.held_micros) == (10_000 - 1_400, 0)
        charged = await database.fetchone("SELECT SUM(cost_micros) FROM usage_logs WHERE account_id = 'acc_1'")
        assert charged is not None and int(charged[0]) == 1_400


async def test_settings_are_stored_once(store: Store) -> None:
    assert await store.get_setting("k") is None
    assert await store.put_setting_if_absent("k", "first") is True
    assert await store.put_setting_if_absent("k", "second") is False
    assert await store.get_setting("k") == "first"


async def test_accounts_names_listing_and_updates(store: Store) -> None:
    assert await store.accounts.insert_account(_account("acc_b", name="bob"), "h1")
    assert await store.accounts.insert_account(_account("acc_a", name="alice"), "h2")
    assert not await store.accounts.insert_account(_account("acc_c", name="bob"), "h3")
    assert await store.accounts.get_account("acc_a") == _account("acc_a", name="alice")
    assert [a.id for a in await store.accounts.list_accounts("", 10)] == ["acc_a", "acc_b"]
    assert [a.id for a in await store.accounts.list_accounts("acc_a", 10)] == ["acc_b"]
    credentials = await store.accounts.credentials("bob")
    assert credentials is not None and (credentials.account_id, credentials.password_hash) == ("acc_b", "h1")
    disabled = await store.accounts.update_account("acc_b", {"disabled": True})
    assert disabled is not None and disabled.disabled
    assert await store.accounts.get_account("nope") is None
    changed = await store.accounts.update_account("acc_b", {"disabled": False, "discount": "0.85"})
    assert changed is not None and (changed.disabled, changed.discount) == (False, "0.85")
    assert await store.accounts.update_account("nope", {"discount": "0.5"}) is None
    with pytest.raises(ValueError, match="balance_micros"):
        await store.accounts.update_account("acc_b", {"balance_micros": 10**9})
    assert (await store.accounts.get_account("acc_b")) == changed


async def test_credits_are_idempotent_even_when_replayed_concurrently(store: Store) -> None:
    assert await store.accounts.insert_account(_account("acc_1"), "h")
    credit = Movement("led_x", "acc_1", 2_500_000, "operator", "top-up", "key-1", "fp-1", NOW)
    replays = [dataclasses.replace(credit, entry_id=f"led_{n}") for n in range(8)]
    results = await asyncio.gather(*(store.accounts.apply_movement(c) for c in replays))
    entries = {moved.entry for moved in results if moved is not None}
    assert len(entries) == 1 and None not in entries
    assert all(moved is not None and moved.fingerprint == "fp-1" for moved in results)
    account = await store.accounts.get_account("acc_1")
    assert account is not None and account.balance_micros == 2_500_000
    missing = dataclasses.replace(credit, account_id="nobody", idempotency_key="key-2")
    assert await store.accounts.apply_movement(missing) is None


def _debit(key: str, micros: int) -> Movement:
    return Movement(f"led_{key}", "acc_1", -micros, "operator", "refund", key, f"fp-{key}", NOW)


async def test_debits_take_at_most_what_is_available_and_leave_holds_alone(store: Store) -> None:
    await _funded(store, 10_000)
    assert await _place(store, _hold("req_running", 4_000))
    refused = await store.accounts.apply_movement(_debit("too-much", 6_001))
    assert refused is not None and (refused.entry, refused.available_micros) == (None, 6_000)
    taken = await store.accounts.apply_movement(_debit("all", 6_000))
    assert taken is not None and taken.entry is not None
    assert (taken.entry.kind, taken.entry.amount_micros, taken.fingerprint) == ("debit", -6_000, "fp-all")
    replayed = await store.accounts.apply_movement(dataclasses.replace(_debit("all", 6_000), entry_id="led_again"))
    assert replayed is not None and replayed.entry == taken.entry
    account = await store.accounts.get_account("acc_1")
    assert account is not None and (account.balance_micros, account.held_micros) == (4_000, 4_000)
    # The running call is still paid for: its settlement charges what it held.
    assert await store.ledger.settle(_hold("req_running", 4_000), 4_000, _usage("req_running", 4_000))
    account = await store.accounts.get_account("acc_1")
    assert account is not None and (account.balance_micros, account.held_micros) == (0, 0)


async def test_concurrent_debits_never_take_more_than_the_balance(store: Store) -> None:
    await _funded(store, 2_500)
    results = await asyncio.gather(*(store.accounts.apply_movement(_debit(f"k{n}", 1_000)) for n in range(8)))
    taken = [moved for moved in results if moved is not None and moved.entry is not None]
    assert len(taken) == 2
    account = await store.accounts.get_account("acc_1")
    assert account is not None and account.balance_micros == 500


async def test_ledger_entries_list_an_accounts_credits_and_debits_newest_first(store: Store) -> None:
    await _funded(store, 10_000)  # led_1
    assert await store.accounts.insert_account(_account("acc_2"), "h")
    for entry_id, account_id, micros in (("led_2", "acc_1", -1_000), ("led_3", "acc_2", 500), ("led_4", "acc_1", 2)):
        movement = Movement(entry_id, account_id, micros, "operator", "why", entry_id, "fp", NOW)
        assert await store.accounts.apply_movement(movement) is not None
    listed = await store.accounts.list_ledger_entries("acc_1", "", 10)
    assert [(entry.id, entry.kind, entry.amount_micros) for entry in listed] == [
        ("led_4", "credit", 2),
        ("led_2", "debit", -1_000),
        ("led_1", "credit", 10_000),
    ]
    assert listed[1].created_at == NOW and listed[1].reason == "why"
    assert [entry.id for entry in await store.accounts.list_ledger_entries("acc_1", "led_4", 1)] == ["led_2"]
    assert await store.accounts.list_ledger_entries("acc_1", "led_1", 10) == []


async def test_the_upgrade_to_debits_keeps_every_credit_and_its_key(url: str) -> None:
    async with _schema_before(url, "debits") as (database, store, newest):
        await _funded(store, 10_000)
        assert await store.migrate() == newest
        replayed = await store.accounts.apply_movement(
            Movement("led_again", "acc_1", 10_000, "operator", "setup", "setup-key", "fp", NOW)
        )
        assert replayed is not None and replayed.entry is not None and replayed.entry.id == "led_1"
        taken = await store.accounts.apply_movement(_debit("after", 2_500))
        assert taken is not None and taken.entry is not None and taken.entry.kind == "debit"
        assert await database.fetchone("SELECT SUM(amount_micros) FROM ledger_entries") == (7_500,)
        with pytest.raises(Exception, match=r"(?i)foreign key"):  # still a reference to the rebuilt table
            await database.execute(
                "INSERT INTO credit_requests (idempotency_key, fingerprint, ledger_entry_id, created_at)"
                " VALUES ('orphan', 'fp', 'led_missing', ?)",
                (database.dialect.time(NOW),),
            )


async def test_tokens_round_trip_and_are_scoped_by_account(store: Store) -> None:
    await store.accounts.insert_account(_account("acc_1"), "h")
    await store.accounts.insert_account(_account("acc_2"), "h")
    token = _token("tok_1", "acc_1")
    await store.tokens.insert_token(token)
    assert await store.tokens.get_token("acc_1", "tok_1") == token
    assert await store.tokens.get_token("acc_2", "tok_1") is None
    assert await store.tokens.find_token_by_key_hash("hash-tok_1") == (token, False)
    changed = await store.tokens.update_token("acc_1", "tok_1", {"allowed_models": (), "expires_at": None})
    assert changed == dataclasses.replace(token, allowed_models=(), expires_at=None)
    assert await store.tokens.update_token("acc_2", "tok_1", {"name": "stolen"}) is None
    await store.tokens.insert_token(_token("tok_2", "acc_1"))
    assert [t.id for t in await store.tokens.list_tokens("acc_1", "", 10)] == ["tok_1", "tok_2"]
    assert not await store.tokens.delete_token("acc_2", "tok_1", NOW)
    assert await store.tokens.delete_token("acc_1", "tok_1", NOW)
    assert not await store.tokens.delete_token("acc_1", "tok_1", NOW)
    assert await store.tokens.find_token_by_key_hash("hash-tok_1") is None
    await store.accounts.update_account("acc_1", {"disabled": True})
    assert await store.tokens.find_token_by_key_hash("hash-tok_2") == (_token("tok_2", "acc_1"), True)


async def test_sessions_expire_and_die_with_their_account(store: Store) -> None:
    await store.accounts.insert_account(_account("acc_1"), "h")
    user = Session("s-user", "acc_1", False, NOW + timedelta(hours=1))
    operator = Session("s-op", "", True, NOW + timedelta(hours=1))
    for session in (user, operator):
        await store.sessions.insert_session(session, NOW)
    assert await store.sessions.find_session("s-user", NOW) == user
    assert await store.sessions.find_session("s-user", NOW + timedelta(hours=2)) is None
    await store.accounts.update_account("acc_1", {"disabled": True})
    assert await store.sessions.find_session("s-user", NOW) is None
    assert await store.sessions.find_session("s-op", NOW) == operator
    await store.sessions.delete_session("s-op")
    assert await store.sessions.find_session("s-op", NOW) is None


async def test_a_new_password_ends_the_account_s_other_sessions_at_once(store: Store) -> None:
    for account_id in ("acc_1", "acc_2"):
        await store.accounts.insert_account(_account(account_id, name=account_id), "old hash")
    sessions = [
        Session("s-kept", "acc_1", False, NOW + timedelta(hours=1)),
        Session("s-other", "acc_1", False, NOW + timedelta(hours=1)),
        Session("s-expired", "acc_1", False, NOW - timedelta(hours=1)),
        Session("s-elsewhere", "acc_2", False, NOW + timedelta(hours=1)),
    ]
    for session in sessions:
        await store.sessions.insert_session(session, NOW - timedelta(hours=2))
    assert await store.accounts.set_password("acc_1", "new hash", NOW, keep_session="s-kept") == 1  # live ones
    credentials = await store.accounts.credentials("acc_1")
    assert credentials is not None and credentials.password_hash == "new hash"
    assert await store.sessions.find_session("s-kept", NOW) == sessions[0]
    assert await store.sessions.find_session("s-other", NOW) is None
    assert await store.sessions.find_session("s-elsewhere", NOW) == sessions[3]
    assert await store.accounts.set_password("acc_1", "newer hash", NOW) == 1  # none kept now
    assert await store.accounts.set_password("acc_nope", "hash", NOW) is None


@pytest.mark.parametrize("limit", ["balance", "cap"])
async def test_concurrent_holds_admit_exactly_what_is_covered(store: Store, limit: str) -> None:
    await _funded(store, 50 * 1_000 if limit == "balance" else 10**9, cap=50 * 1_000 if limit == "cap" else 0)
    placed = await asyncio.gather(*(_place(store, _hold(f"req_{n}", 1_000)) for n in range(200)))
    assert placed.count(True) == 50
    account = await store.accounts.get_account("acc_1")
    funds = await _funds(store)
    assert account is not None and account.held_micros == 50_000 and funds is not None
    assert funds.budget_micros == account.available_micros if limit == "balance" else funds.budget_micros == 0


async def test_a_hold_is_sized_from_the_funds_it_reads_and_a_refusal_writes_nothing(store: Store) -> None:
    await _funded(store, 10_000, cap=8_000)
    assert await _funds(store) == Funds(10_000, 8_000, "1")
    assert await _funds(store, "tok_unknown") is None
    assert await _place(store, _hold("req_1", 5_000))
    assert await _funds(store) == Funds(5_000, 3_000, "1")  # the refusals before wrote nothing
    account = await store.accounts.get_account("acc_1")
    assert account is not None and account.held_micros == 5_000
    assert [hold.request_id for hold in await store.ledger.expired_holds(NOW + timedelta(days=1), 10)] == ["req_1"]


async def test_a_disabled_account_gets_no_hold(store: Store) -> None:
    await _funded(store, 10_000)
    await store.accounts.update_account("acc_1", {"disabled": True})
    assert not await _place(store, _hold("req_1", 1))


async def test_settlement_charges_once_and_releases_the_rest(url: str, store: Store) -> None:
    await _funded(store, 10_000, cap=8_000)
    assert await _place(store, _hold("req_1", 5_000))
    other = await open_store(url, OPTIONS)  # a second process: a reaper racing the late settlement
    try:
        settled = await asyncio.gather(
            store.ledger.settle(_hold("req_1", 5_000), 1_234, _usage("req_1", 1_234)),
            other.ledger.settle(_hold("req_1", 5_000), 0, dataclasses.replace(_usage("req_1", 0), id="use_reaped")),
        )
    finally:
        await other.close()
    assert sorted(settled) == [False, True]
    account = await store.accounts.get_account("acc_1")
    token = await store.tokens.get_token("acc_1", "tok_1")
    assert account is not None and token is not None and account.held_micros == 0
    charged = 10_000 - account.balance_micros
    assert charged in (0, 1_234) and token.spent_micros == charged
    assert not await store.ledger.settle(_hold("req_1", 5_000), 99, _usage("req_1", 99))
    rows = await store.ledger.list_usage("acc_1", {}, "", 10)
    assert [(row.request_id, row.cost_micros) for row in rows] == [("req_1", charged)]


async def test_a_charge_never_exceeds_its_hold(store: Store) -> None:
    await _funded(store, 10_000)
    assert await _place(store, _hold("req_1", 500))
    assert await store.ledger.settle(_hold("req_1", 500), 9_999, _usage("req_1", 9_999))
    account = await store.accounts.get_account("acc_1")
    assert account is not None and (account.balance_micros, account.held_micros) == (9_500, 0)


async def test_expired_holds_are_the_open_ones_past_their_deadline(store: Store) -> None:
    await _funded(store, 10_000)
    assert await _place(store, _hold("old", 10, expires=NOW - timedelta(minutes=1)))
    assert await _place(store, _hold("live", 10))
    assert await _place(store, _hold("settled", 10, expires=NOW - timedelta(minutes=1)))
    assert await store.ledger.settle(_hold("settled", 10), 0, _usage("settled", 0))
    (expired,) = await store.ledger.expired_holds(NOW, 10)
    assert expired == _hold("old", 10, expires=NOW - timedelta(minutes=1))


async def test_usage_rows_filters_pages_and_daily_totals(store: Store) -> None:
    await _funded(store, 10**6)
    for n, cost in enumerate((100, 200, 300)):
        assert await _place(store, _hold(f"req_{n}", 1_000))
        usage = dataclasses.replace(_usage(f"req_{n}", cost), status="ok" if n else "upstream_error")
        assert await store.ledger.settle(_hold(f"req_{n}", 1_000), cost, usage)
    rows = await store.ledger.list_usage("acc_1", {}, "", 2)
    assert [row.request_id for row in rows] == ["req_2", "req_1"]
    assert rows[0] == _usage("req_2", 300)
    older = await store.ledger.list_usage("acc_1", {}, rows[-1].id, 2)
    assert [row.request_id for row in older] == ["req_0"]
    failed = await store.ledger.list_usage("acc_1", {"status": "upstream_error"}, "", 10)
    assert [row.request_id for row in failed] == ["req_0"]
    window = {"start": NOW - timedelta(seconds=1), "end": NOW + timedelta(seconds=1), "model": "deepseek-chat"}
    assert len(await store.ledger.list_usage("acc_1", window, "", 10)) == 3
    (day,) = await store.ledger.usage_totals("acc_1", "day", "2026-11-29", "2026-11-29")
    assert day == {
        "day": "2026-11-29", "requests": 3, "input_tokens": 30, "cached_tokens": 6, "cache_write_tokens": 0,
        "output_tokens": 15, "cost_micros": 600,
    }  # fmt: skip
    assert await store.ledger.account_discount("acc_1") == "1"
    assert await store.ledger.account_discount("nobody") is None
