"""Revocation across replicas: two Tollgates sharing one database and one Redis.

Each replica caches API-key look-ups; a token deleted, edited or an account disabled on one replica
must be refused by the other within a second, through Redis pub/sub while it is up, and through the
cache's short backstop TTL while it is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from tests.support.inprocess import Running, running_inprocess
from tests.support.redis_server import private_redis, shared_redis_url, unique_prefix

LONG_TTL = {"TOLLGATE_AUTH_CACHE_TTL_SECONDS": "60", "TOLLGATE_AUTH_CACHE_BACKSTOP_SECONDS": "60"}
"""With both TTLs long, only a revocation message can explain a replica refusing a key it cached."""


@contextlib.asynccontextmanager
async def two_replicas(tmp_path: Path, redis_url: str, **environ: str) -> AsyncIterator[tuple[Running, Running]]:
    shared = {"TOLLGATE_REDIS_URL": redis_url, "TOLLGATE_LIMITS_REDIS_PREFIX": unique_prefix(), **environ}
    async with running_inprocess(tmp_path, **shared) as a, running_inprocess(tmp_path, **shared) as b:
        await wait_until(lambda: both_listening(a, b), within=5)
        yield a, b


async def both_listening(a: Running, b: Running) -> bool:
    return a.tollgate.domain.token_cache.bus_healthy and b.tollgate.domain.token_cache.bus_healthy


async def wait_until(condition: Callable[[], Awaitable[bool]], *, within: float) -> float:
    """Seconds until `condition` held; fails the test past `within`."""
    start = time.monotonic()
    while not await condition():
        assert time.monotonic() - start < within, f"not within {within} s"
        await asyncio.sleep(0.02)
    return time.monotonic() - start


async def status(replica: Running, key: str, path: str = "/v1/models") -> int:
    reply = await replica.http.get(path, headers={"authorization": f"Bearer {key}"})
    return reply.status_code


async def user_with_key(replica: Running, name: str) -> tuple[dict[str, str], str, str, str]:
    """(session, account id, token id, key) of a new account with one token."""
    account_id = await replica.create_account(name)
    session = await replica.login(name)
    token_id, key = await replica.create_token(session)
    return session, account_id, token_id, key


async def refused_on(replica: Running, key: str) -> bool:
    return await status(replica, key) == 401


async def test_a_token_deleted_on_one_replica_is_refused_by_the_other_within_a_second(tmp_path: Path) -> None:
    async with two_replicas(tmp_path, shared_redis_url(), **LONG_TTL) as (a, b):
        session, _, token_id, key = await user_with_key(a, "alice")
        assert await status(b, key) == 200  # b has now cached the look-up for a minute
        assert await status(b, key) == 200

        reply = await a.http.delete(f"/api/v1/tokens/{token_id}", headers=session)
        assert reply.status_code == 200, reply.text
        assert await status(a, key) == 401  # the replica that deleted it refuses at once
        elapsed = await wait_until(lambda: refused_on(b, key), within=1.0)
        assert elapsed < 1.0


async def test_an_account_disabled_on_one_replica_stops_its_keys_on_the_other(tmp_path: Path) -> None:
    async with two_replicas(tmp_path, shared_redis_url(), **LONG_TTL) as (a, b):
        _, account_id, _, key = await user_with_key(a, "bob")
        _, _, _, bystander = await user_with_key(a, "carol")
        assert await status(b, key) == 200
        assert await status(b, bystander) == 200

        reply = await a.http.post(f"/api/v1/accounts/{account_id}:disable", headers=a.operator())
        assert reply.status_code == 200, reply.text
        await wait_until(lambda: refused_on(b, key), within=1.0)
        assert await status(b, bystander) == 200  # only that account's keys are forgotten


async def test_a_token_edited_on_one_replica_takes_effect_on_the_other(tmp_path: Path) -> None:
    async with two_replicas(tmp_path, shared_redis_url(), **LONG_TTL) as (a, b):
        session, _, token_id, key = await user_with_key(a, "dave")
        assert await status(b, key) == 200

        reply = await a.http.patch(f"/api/v1/tokens/{token_id}", json={"disabled": True}, headers=session)
        assert reply.status_code == 200, reply.text
        await wait_until(lambda: refused_on(b, key), within=1.0)

        reply = await a.http.patch(f"/api/v1/tokens/{token_id}", json={"disabled": False}, headers=session)
        assert reply.status_code == 200, reply.text
        await wait_until(lambda: _accepted_on(b, key), within=1.0)


async def _accepted_on(replica: Running, key: str) -> bool:
    return await status(replica, key) == 200


async def test_with_redis_down_a_deletion_reaches_the_other_replica_by_the_backstop_ttl(tmp_path: Path) -> None:
    backstop = {"TOLLGATE_AUTH_CACHE_TTL_SECONDS": "60", "TOLLGATE_AUTH_CACHE_BACKSTOP_SECONDS": "1"}
    with private_redis() as (url, server):
        async with two_replicas(tmp_path, url, **backstop) as (a, b):
            session, _, token_id, key = await user_with_key(a, "erin")
            assert await status(b, key) == 200

            server.kill()
            server.wait()
            await wait_until(lambda: deaf(b), within=5)

            reply = await a.http.delete(f"/api/v1/tokens/{token_id}", headers=session)
            assert reply.status_code == 200, reply.text  # the database change stands though nobody hears of it
            await wait_until(lambda: refused_on(b, key), within=2.0)


async def deaf(replica: Running) -> bool:
    return not replica.tollgate.domain.token_cache.bus_healthy
