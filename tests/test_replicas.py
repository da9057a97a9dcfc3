"""Two `tollgate serve` replicas sharing PostgreSQL and Redis: limits, money and revocation hold.

Each scenario ends with the ledger's invariants recomputed from the shared database.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import openai
import psycopg
import pytest

from server.domain.money import format_usd
from tests.support.inprocess import PASSWORD
from tests.support.ledger_checks import assert_ledger_invariants
from tests.support.postgres import ADMIN_URL, database_for_this_run
from tests.support.redis_server import shared_redis_url
from tests.support.replicas import Cluster, Replica, running_cluster

LONG_STREAM = "[[scenario: chunks=8, chunk_interval_ms=400]] hold a slot"
SLOW = "[[scenario: first_byte_ms=1500]] race"
VERY_LONG_STREAM = "[[scenario: chunks=8, chunk_interval_ms=1000]] outlive the replica"


@pytest.fixture
def database() -> Iterator[tuple[str, Callable[[], None]]]:
    """A PostgreSQL database of the test's own, and the check of the ledger's invariants in it."""
    with database_for_this_run() as url:
        yield url, lambda: assert_ledger_invariants(url)


async def stream_to_end(client: openai.AsyncOpenAI, content: str = LONG_STREAM) -> int:
    try:
        stream = await client.chat.completions.create(
            model="deepseek-chat", messages=[{"role": "user", "content": content}], stream=True
        )
        async for _ in stream:
            pass
    except openai.APIStatusError as exc:
        return exc.status_code
    return 200


async def wait_until(condition: Callable[[], Awaitable[bool]], *, within: float) -> float:
    start = time.monotonic()
    while not await condition():
        assert time.monotonic() - start < within, f"not within {within} s"
        await asyncio.sleep(0.05)
    return time.monotonic() - start


async def account(replica: Replica, session: dict[str, str]) -> dict[str, Any]:
    reply = await replica.http.get("/api/v1/account", headers=session)
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


async def test_per_token_concurrency_is_global_across_replicas(
    tmp_path: Path, database: tuple[str, Callable[[], None]]
) -> None:
    url, check = database
    async with running_cluster(tmp_path, url, shared_redis_url()) as cluster:
        _, key = await cluster.create_user("alice", "100")
        a, b = cluster.replicas
        async with a.client(key) as on_a, b.client(key) as on_b:
            statuses = await asyncio.gather(
                *(stream_to_end(on_a) for _ in range(75)), *(stream_to_end(on_b) for _ in range(75))
            )
        assert statuses.count(200) == 100 and statuses.count(429) == 50, statuses
    check()


async def test_the_overdraft_race_over_two_replicas_admits_exactly_what_the_balance_covers(
    tmp_path: Path, database: tuple[str, Callable[[], None]]
) -> None:
    url, check = database
    async with running_cluster(tmp_path, url, shared_redis_url()) as cluster:
        a, b = cluster.replicas
        probe_session, probe_key = await cluster.create_user("probe", "100")
        hold = await _hold_of_one_request(a, probe_session, probe_key)
        _, key = await cluster.create_user("racer", format_usd(50 * hold), max_concurrency=200)

        async def one(replica: Replica) -> int:
            async with replica.client(key) as client:
                try:
                    await client.chat.completions.create(
                        model="deepseek-chat", messages=[{"role": "user", "content": SLOW}], max_tokens=100
                    )
                except openai.APIStatusError as exc:
                    return exc.status_code
            return 200

        statuses = await asyncio.gather(*(one(a) for _ in range(100)), *(one(b) for _ in range(100)))
        assert statuses.count(200) == 50 and statuses.count(402) == 150, statuses
    check()


async def _hold_of_one_request(replica: Replica, session: dict[str, str], key: str) -> int:
    async with replica.client(key) as client:
        call = asyncio.create_task(
            client.chat.completions.create(
                model="deepseek-chat", messages=[{"role": "user", "content": SLOW}], max_tokens=100
            )
        )
        held = 0
        for _ in range(300):
            held = int((await account(replica, session))["held_micros"])
            if held:
                break
            await asyncio.sleep(0.01)
        await call
    assert held
    return held


async def test_a_replica_killed_under_load_leaves_nothing_behind(
    tmp_path: Path, database: tuple[str, Callable[[], None]]
) -> None:
    url, check = database
    quick = {
        "TOLLGATE_RELAY_STREAM_MAX_SECONDS": "12",
        "TOLLGATE_BILLING_HOLD_GRACE_SECONDS": "1",
        "TOLLGATE_BILLING_REAPER_INTERVAL_SECONDS": "0.5",
        "TOLLGATE_LIMITS_LEASE_SECONDS": "2",
    }
    async with running_cluster(tmp_path, url, shared_redis_url(), environ=quick) as cluster:
        a, b = cluster.replicas
        session, key = await cluster.create_user("bob", "100", max_concurrency=10)
        async with a.client(key) as on_a, b.client(key) as on_b:
            doomed = [asyncio.create_task(stream_to_end(on_a, VERY_LONG_STREAM)) for _ in range(10)]
            await wait_until(lambda: _upstream_saw(cluster, 10), within=20)  # each holds money and a slot
            assert await _status_of_one(on_b) == 429

            os.kill(a.process.process.pid, signal.SIGKILL)
            outcomes = await asyncio.gather(*doomed, return_exceptions=True)

            # the dead replica's leases expire by themselves; then the survivor serves the token again
            await wait_until(lambda: _accepts(on_b), within=10)
            # its holds outlive it until the survivor's reaper settles each one, once
            await wait_until(lambda: _held_nothing(b, session), within=30)
            logs = (await b.http.get("/api/v1/logs?page_size=100", headers=session)).json()["logs"]
            assert sum(1 for row in logs if row["status"] == "abandoned") == 10, outcomes
    check()


async def _upstream_saw(cluster: Cluster, calls: int) -> bool:
    return len(cluster.upstream.requests_to("/v1/chat/completions")) >= calls


async def _held_nothing(replica: Replica, session: dict[str, str]) -> bool:
    return int((await account(replica, session))["held_micros"]) == 0


async def _accepts(client: openai.AsyncOpenAI) -> bool:
    return await _status_of_one(client) == 200


async def _status_of_one(client: openai.AsyncOpenAI) -> int:
    try:
        await client.chat.completions.create(model="deepseek-chat", messages=[{"role": "user", "content": "hi"}])
    except openai.APIStatusError as exc:
        return exc.status_code
    return 200


async def test_a_token_deleted_on_one_replica_is_refused_by_the_other_within_a_second(
    tmp_path: Path, database: tuple[str, Callable[[], None]]
) -> None:
    url, check = database
    long_cache = {"TOLLGATE_AUTH_CACHE_TTL_SECONDS": "60", "TOLLGATE_AUTH_CACHE_BACKSTOP_SECONDS": "60"}
    async with running_cluster(tmp_path, url, shared_redis_url(), environ=long_cache) as cluster:
        a, b = cluster.replicas
        session, key = await cluster.create_user("carol", "100")
        async with b.client(key) as on_b:
            assert [m.id async for m in on_b.models.list()]  # b caches the key for a minute
            token_id = (await a.http.get("/api/v1/tokens", headers=session)).json()["tokens"][0]["id"]
            assert (await a.http.delete(f"/api/v1/tokens/{token_id}", headers=session)).status_code == 200
            elapsed = await wait_until(lambda: _refuses(on_b), within=1.0)
        assert elapsed < 1.0
    check()


async def test_failed_logins_spread_over_both_replicas_lock_the_name_on_both(
    tmp_path: Path, database: tuple[str, Callable[[], None]]
) -> None:
    url, check = database
    async with running_cluster(tmp_path, url, shared_redis_url()) as cluster:
        await cluster.create_user("dave", "1")
        a, b = cluster.replicas
        for replica in (a, b, a, b, a):  # three here, two there: five in all
            wrong = await replica.http.post("/api/v1/sessions", json={"name": "dave", "password": "a guess"})
            assert wrong.status_code == 401
        for replica in (a, b):
            locked = await replica.http.post("/api/v1/sessions", json={"name": "dave", "password": PASSWORD})
            assert locked.status_code == 429, locked.text
            assert 0 < int(locked.headers["retry-after"]) <= 300
    check()


async def _refuses(client: openai.AsyncOpenAI) -> bool:
    try:
        await client.models.list()
    except openai.AuthenticationError:
        return True
    return False


async def test_postgresql_out_under_load_fails_fast_charges_once_and_settles_after(
    tmp_path: Path, database: tuple[str, Callable[[], None]]
) -> None:
    url, check = database
    async with running_cluster(tmp_path, url, shared_redis_url()) as cluster:
        a, b = cluster.replicas
        session, key = await cluster.create_user("dora", "100")
        async with a.client(key) as on_a, b.client(key) as on_b:
            in_flight = [asyncio.create_task(stream_to_end(client)) for client in (on_a, on_b) for _ in range(5)]
            await wait_until(lambda: _upstream_saw(cluster, 10), within=20)

            with database_outage(url):
                started = time.monotonic()
                refused = await asyncio.gather(_status_of_one(on_a), _status_of_one(on_b))
                assert list(refused) == [503, 503]
                assert time.monotonic() - started < 10  # new calls fail fast, they do not hang
                # the streams in flight end during the outage; their settlements wait for the database
                assert await asyncio.gather(*in_flight) == [200] * 10

            await wait_until(lambda: _held_nothing(b, session), within=30)
            assert await _status_of_one(on_a) == 200 and await _status_of_one(on_b) == 200
            logs = (await b.http.get("/api/v1/logs?page_size=100", headers=session)).json()["logs"]
            assert sorted(row["status"] for row in logs) == ["ok"] * 12
            assert all(int(row["cost_micros"]) > 0 for row in logs)
    check()


@contextlib.contextmanager
def database_outage(url: str) -> Iterator[None]:
    """No connection to the test's database is allowed, and those open are cut, until the block ends."""
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        try:
            yield
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
