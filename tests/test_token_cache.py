"""The API-key look-up cache: TTLs by bus health, LRU bound, and what each revocation forgets."""

from __future__ import annotations

import dataclasses

from server.domain.clock import utcnow
from server.domain.records import ApiToken
from server.domain.token_cache import Found, TokenCache


@dataclasses.dataclass
class Clock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now


class Database:
    """Counts look-ups, so a test sees which ones the cache answered."""

    def __init__(self, tokens: dict[str, ApiToken]) -> None:
        self.tokens = tokens
        self.reads = 0

    async def find(self, key_hash: str) -> Found:
        self.reads += 1
        token = self.tokens.get(key_hash)
        return None if token is None else (token, False)


@dataclasses.dataclass
class Published:
    subjects: list[str] = dataclasses.field(default_factory=list)

    async def publish(self, subject: str) -> None:
        self.subjects.append(subject)


def token(token_id: str, account_id: str) -> ApiToken:
    return ApiToken(
        id=token_id,
        account_id=account_id,
        key_hash=f"hash-{token_id}",
        masked_key="sk-…",
        spent_micros=0,
        created_at=utcnow(),
        last_used_at=None,
        name=token_id,
        spend_cap_micros=0,
        expires_at=None,
        allowed_models=(),
        allowed_ips=(),
        max_concurrency=0,
        requests_per_minute=0,
        tokens_per_minute=0,
        disabled=False,
    )


def database() -> Database:
    return Database({f"hash-{t}": token(t, account) for t, account in [("t1", "a1"), ("t2", "a1"), ("t3", "a2")]})


async def test_a_look_up_is_reused_for_the_ttl_while_the_bus_listens_and_for_the_backstop_otherwise() -> None:
    clock, db = Clock(), database()
    cache = TokenCache(ttl=30, backstop_ttl=2, clock=clock)
    cache.follow_bus(True)
    await cache.lookup("hash-t1", db.find)
    clock.now = 29
    await cache.lookup("hash-t1", db.find)
    assert db.reads == 1
    clock.now = 31
    await cache.lookup("hash-t1", db.find)
    assert db.reads == 2

    cache.follow_bus(False)
    clock.now = 32.5
    await cache.lookup("hash-t1", db.find)
    assert db.reads == 2
    clock.now = 33.5
    await cache.lookup("hash-t1", db.find)
    assert db.reads == 3


async def test_unknown_keys_are_cached_too_so_guessing_costs_no_database_reads() -> None:
    clock, db = Clock(), database()
    cache = TokenCache(ttl=30, backstop_ttl=2, clock=clock)
    assert await cache.lookup("hash-nope", db.find) is None
    assert await cache.lookup("hash-nope", db.find) is None
    assert db.reads == 1


async def test_the_least_recently_used_entry_goes_first() -> None:
    db = database()
    cache = TokenCache(ttl=30, backstop_ttl=30, max_entries=2, clock=Clock())
    await cache.lookup("hash-t1", db.find)
    await cache.lookup("hash-t2", db.find)
    await cache.lookup("hash-t1", db.find)  # t1 is now the most recent
    await cache.lookup("hash-t3", db.find)  # evicts t2
    assert db.reads == 3
    await cache.lookup("hash-t1", db.find)
    assert db.reads == 3
    await cache.lookup("hash-t2", db.find)
    assert db.reads == 4


async def test_revoking_a_token_forgets_it_here_and_tells_the_other_replicas() -> None:
    db, published = database(), Published()
    cache = TokenCache(ttl=30, backstop_ttl=30, publisher=published, clock=Clock())
    for key in ("hash-t1", "hash-t2"):
        await cache.lookup(key, db.find)
    await cache.revoke_token("t1")
    assert published.subjects == ["token:t1"]
    await cache.lookup("hash-t1", db.find)
    await cache.lookup("hash-t2", db.find)
    assert db.reads == 3  # t1 read again, t2 still cached


async def test_an_account_revocation_forgets_all_of_its_tokens_and_only_those() -> None:
    db = database()
    cache = TokenCache(ttl=30, backstop_ttl=30, clock=Clock())
    for key in ("hash-t1", "hash-t2", "hash-t3"):
        await cache.lookup(key, db.find)
    cache.forget("account:a1")
    for key in ("hash-t1", "hash-t2", "hash-t3"):
        await cache.lookup(key, db.find)
    assert db.reads == 5


async def test_forgetting_everything_follows_a_bus_reconnection() -> None:
    db = database()
    cache = TokenCache(ttl=30, backstop_ttl=30, clock=Clock())
    await cache.lookup("hash-t1", db.find)
    await cache.lookup("hash-nope", db.find)
    cache.forget("*")
    await cache.lookup("hash-t1", db.find)
    await cache.lookup("hash-nope", db.find)
    assert db.reads == 4
