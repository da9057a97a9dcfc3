"""Limits in Redis, shared by every replica: one Lua script per key and operation, Redis's own clock.

Each script touches one key, so it runs atomically and, with the hash tags the callers put in their
keys, on one Redis Cluster slot. A request's scripts (its lease and its windows) go in one pipeline,
one round trip; all or nothing is kept by undoing the granted part of a refusal. Scripts are sent by
SHA and loaded again after NOSCRIPT (e.g. when Redis restarted). Every key gets an expiry, so nothing
outlives its users.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisError

from server.limits.base import (
    Correction,
    FailureAsk,
    LeaseAsk,
    Taken,
    WindowAsk,
    WindowResult,
    undoing,
    window_retry_after,
)

log = logging.getLogger(__name__)

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

_RELEASE = """
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
"""

# Failure times are scores; members are random, so two failures in one millisecond are both kept.
_RECORD_FAILURE = (
    _NOW_MS
    + """
local limit, window = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(limit + 1))
redis.call('PEXPIRE', KEYS[1], window)
return 1
"""
)

# Milliseconds until the `limit`-th latest failure leaves the window (0 with fewer than `limit` kept).
_FAILURE_WAIT = (
    _NOW_MS
    + """
local limit, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local oldest = redis.call('ZRANGE', KEYS[1], -limit, -limit, 'WITHSCORES')
if #oldest == 0 then
  return 0
end
return math.max(0, tonumber(oldest[2]) + window - now)
"""
)

_Call = tuple[AsyncScript, str, tuple[Any, ...]]
"""A script, the key it runs on (without the prefix), and its arguments."""

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
        self._release = client.register_script(_RELEASE)
        self._record_failure = client.register_script(_RECORD_FAILURE)
        self._failure_wait = client.register_script(_FAILURE_WAIT)
        self._giving_back: set[asyncio.Task[None]] = set()

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

    async def take(self, lease: LeaseAsk | None, windows: Sequence[WindowAsk]) -> Taken:
        """As the Protocol says; and a caller that stops waiting (cancelled, timed out) leaves nothing taken.

        The round trip runs to its end regardless, in a task of its own: its answer says what Redis took, and what it
        took is then given back. Cut short instead, it could have taken a slot for a whole lease and no one to free it.
        """
        taking = asyncio.ensure_future(self._take(lease, windows))
        try:
            return await asyncio.shield(taking)
        except asyncio.CancelledError:
            taking.add_done_callback(lambda done: self._give_back_abandoned(lease, windows, done))
            raise

    def _give_back_abandoned(
        self, lease: LeaseAsk | None, windows: Sequence[WindowAsk], taking: asyncio.Future[Taken]
    ) -> None:
        if taking.cancelled() or taking.exception() is not None or not taking.result().admitted:
            return  # nothing known to be taken: a refusal gave its part back itself
        task = asyncio.create_task(self._give_back_logged(*undoing(lease, taking.result(), windows)))
        self._giving_back.add(task)
        task.add_done_callback(self._giving_back.discard)

    async def _give_back_logged(self, lease: tuple[str, str] | None, corrections: Sequence[Correction]) -> None:
        try:
            await self.give_back(lease, corrections)
        except (OSError, RedisError):
            log.warning("limits: giving back an abandoned admission failed; its lease will expire", exc_info=True)

    async def _take(self, lease: LeaseAsk | None, windows: Sequence[WindowAsk]) -> Taken:
        calls: list[_Call] = (
            [(self._acquire, lease.key, (lease.lease_id, lease.limit, _ms(lease.ttl)))] if lease else []
        )
        calls += [(self._consume, ask.key, (ask.amount, ask.limit, _ms(ask.window))) for ask in windows]
        answers = await self._run(calls)
        granted = bool(answers.pop(0)) if lease is not None else True
        taken = Taken(granted, [_window_result(ask, answer) for ask, answer in zip(windows, answers, strict=True)])
        if not taken.admitted:
            await self.give_back(*undoing(lease, taken, windows))
        return taken

    async def give_back(self, lease: tuple[str, str] | None, corrections: Sequence[Correction]) -> None:
        calls: list[_Call] = [(self._release, lease[0], (lease[1],))] if lease is not None else []
        calls += [(self._correct, c.key, (c.bucket, c.delta)) for c in corrections]
        if calls:
            await self._run(calls)

    async def renew_leases(self, leases: Mapping[str, Sequence[str]], ttl: float) -> None:
        if leases:
            await self._run([(self._renew, key, (_ms(ttl), *lease_ids)) for key, lease_ids in leases.items()])

    async def held_leases(self, key: str) -> int:
        return int(await self._held(keys=[self._prefix + key]))

    async def record_failure(self, asks: Sequence[FailureAsk]) -> None:
        if asks:
            member = secrets.token_hex(8)
            await self._run([(self._record_failure, ask.key, (ask.limit, _ms(ask.window), member)) for ask in asks])

    async def failure_wait(self, asks: Sequence[FailureAsk]) -> float:
        if not asks:
            return 0.0
        waits = await self._run([(self._failure_wait, ask.key, (ask.limit, _ms(ask.window))) for ask in asks])
        return max(int(wait) for wait in waits) / 1000

    async def forget_failures(self, key: str) -> None:
        await self._client.delete(self._prefix + key)

    async def _run(self, calls: Sequence[_Call]) -> list[Any]:
        """Each script on its key, all in one round trip; a script Redis lost (NOSCRIPT) is loaded and run again.

        The pipeline sends EVALSHA itself: redis-py's scripts in a pipeline would first ask SCRIPT EXISTS, a second
        round trip on every call.
        """
        if len(calls) == 1:
            script, key, args = calls[0]
            return [await script(keys=[self._prefix + key], args=args)]
        async with self._client.pipeline(transaction=False) as pipe:
            for script, key, args in calls:
                pipe.evalsha(script.sha, 1, self._prefix + key, *args)
            answers: list[Any] = await pipe.execute(raise_on_error=False)
        for index, (script, key, args) in enumerate(calls):
            if isinstance(answers[index], NoScriptError):  # as after a Redis restart or SCRIPT FLUSH
                answers[index] = await script(keys=[self._prefix + key], args=args)
        for answer in answers:
            if isinstance(answer, Exception):
                raise answer
        return answers

    async def close(self) -> None:
        if self._giving_back:
            await asyncio.wait(set(self._giving_back), timeout=1.0)
        await self._client.aclose()


def _window_result(ask: WindowAsk, answer: list[Any]) -> WindowResult:
    admitted, previous, current, elapsed_ms, bucket = (int(value) for value in answer)
    if admitted:
        return WindowResult(True, 0.0, bucket)
    retry = window_retry_after(previous, current, elapsed_ms / 1000, ask.window, ask.amount, ask.limit)
    return WindowResult(False, retry, bucket)


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))
