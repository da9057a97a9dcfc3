"""Limits in Redis, shared by every replica: one Lua script per operation, Redis's own clock.

Each script touches one key, so it runs atomically and, with the hash tags the callers put in their
keys, on one Redis Cluster slot. Scripts are loaded once and sent by SHA (redis-py reloads one after
NOSCRIPT, e.g. when Redis restarted). Every key gets an expiry, so nothing outlives its users.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import redis.asyncio as aioredis

from server.limits.base import WindowResult, window_retry_after

_NOW_MS = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
"""

_ACQUIRE = (
    _NOW_MS
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
local ttl = tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[1], 2 * ttl)
return 1
"""
)

_RENEW = (
    _NOW_MS
    + """
local ttl = tonumber(ARGV[1])
for index = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'XX', now + ttl, ARGV[index])
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('PEXPIRE', KEYS[1], 2 * ttl)
end
return 1
"""
)

_HELD = (
    _NOW_MS
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZCARD', KEYS[1])
"""
)

# Returns {admitted, previous, current, elapsed ms, bucket}; buckets are hash fields of one key.
_CONSUME = (
    _NOW_MS
    + """
local amount, limit, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local bucket = math.floor(now / window)
local elapsed = now - bucket * window
local previous = tonumber(redis.call('HGET', KEYS[1], bucket - 1) or '0')
local current = tonumber(redis.call('HGET', KEYS[1], bucket) or '0')
if previous * (window - elapsed) / window + current + amount > limit then
  return {0, previous, current, elapsed, bucket}
end
redis.call('HINCRBY', KEYS[1], bucket, amount)
redis.call('HDEL', KEYS[1], bucket - 2)
redis.call('PEXPIRE', KEYS[1], 2 * window)
return {1, previous, current + amount, elapsed, bucket}
"""
)

_CORRECT = """
local field = ARGV[1]
if redis.call('HEXISTS', KEYS[1], field) == 1 then
  if redis.call('HINCRBY', KEYS[1], field, tonumber(ARGV[2])) < 0 then
    redis.call('HSET', KEYS[1], field, 0)
  end
end
return 1
"""


POOL_CONNECTIONS = 64
"""Connections to Redis per process; each limiter call holds one for a round trip."""


class RedisLimiter:
    """The Limiter Protocol over redis.asyncio; keys are `prefix` + the caller's key."""

    def __init__(self, client: aioredis.Redis, prefix: str = "tollgate:") -> None:
        self._client = client
        self._prefix = prefix
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._held = client.register_script(_HELD)
        self._consume = client.register_script(_CONSUME)
        self._correct = client.register_script(_CORRECT)

    @classmethod
    def from_url(cls, url: str, *, timeout: float, prefix: str = "tollgate:") -> RedisLimiter:
        """A client whose calls wait (up to `timeout`) for a pooled connection when a burst has them all.

        redis-py's default pool raises at once past 100 connections in use: a burst of admissions
        would read as Redis being down and switch the process to its fallback share.
        """
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=POOL_CONNECTIONS,
            timeout=timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
        )
        return cls(aioredis.Redis.from_pool(pool), prefix)

    async def acquire_lease(self, key: str, lease_id: str, limit: int, ttl: float) -> bool:
        admitted = await self._acquire(keys=[self._prefix + key], args=[lease_id, limit, _ms(ttl)])
        return bool(admitted)

    async def renew_leases(self, leases: Mapping[str, Sequence[str]], ttl: float) -> None:
        async with self._client.pipeline(transaction=False) as pipe:
            for key, lease_ids in leases.items():
                await self._renew(keys=[self._prefix + key], args=[_ms(ttl), *lease_ids], client=pipe)
            await pipe.execute()

    async def release_lease(self, key: str, lease_id: str) -> None:
        await self._client.zrem(self._prefix + key, lease_id)

    async def held_leases(self, key: str) -> int:
        return int(await self._held(keys=[self._prefix + key]))

    async def consume(self, key: str, amount: int, limit: int, window: float) -> WindowResult:
        answer: list[Any] = await self._consume(keys=[self._prefix + key], args=[amount, limit, _ms(window)])
        admitted, previous, current, elapsed_ms, bucket = (int(value) for value in answer)
        if admitted:
            return WindowResult(True, 0.0, bucket)
        retry = window_retry_after(previous, current, elapsed_ms / 1000, window, amount, limit)
        return WindowResult(False, retry, bucket)

    async def correct(self, key: str, bucket: int, delta: int, window: float) -> None:
        await self._correct(keys=[self._prefix + key], args=[bucket, delta])

    async def close(self) -> None:
        await self._client.aclose()


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))
