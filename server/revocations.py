"""The revocation bus between replicas: Redis pub/sub carrying `token:<id>` and `account:<id>`.

Publishing is best effort within a short timeout (the database change has already happened; a
replica that misses the message falls back on its cache's backstop TTL). Each process listens in a
task of its own and reconnects with backoff; it reports whether it is listening, and a reconnection
forgets everything cached, since messages sent meanwhile are lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)
RECONNECT_SECONDS = (0.1, 0.5, 1.0, 2.0)
PUBLISH_TIMEOUT_SECONDS = 1.0
HEALTH_CHECK_SECONDS = 5


class RedisRevocationBus:
    """Publishes and listens on one Redis channel."""

    def __init__(self, client: aioredis.Redis, channel: str, *, timeout: float = PUBLISH_TIMEOUT_SECONDS) -> None:
        self._client = client
        self._channel = channel
        self._timeout = timeout

    @classmethod
    def from_url(cls, url: str, *, channel: str) -> RedisRevocationBus:
        """A client of its own: a subscription blocks in reads, so no socket timeout, but health checks."""
        client = aioredis.Redis.from_url(url, socket_connect_timeout=1, health_check_interval=HEALTH_CHECK_SECONDS)
        return cls(client, channel)

    async def close(self) -> None:
        await self._client.aclose()

    async def publish(self, subject: str) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                await self._client.publish(self._channel, subject)
        except (TimeoutError, OSError, RedisError) as exc:
            log.warning("revocation of %s not broadcast (%s); other replicas catch up by TTL", subject, exc)

    async def listen(self, on_subject: Callable[[str], None], on_health: Callable[[bool], None]) -> None:
        """Delivers every subject published, until cancelled; `on_health` follows the subscription."""
        attempt = 0
        while True:
            try:
                async with self._client.pubsub() as pubsub:
                    await pubsub.subscribe(self._channel)
                    on_subject("*")  # whatever was revoked while we were not listening
                    on_health(True)
                    if attempt:
                        log.warning("revocations: listening again")
                    attempt = 0
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            data = message["data"]
                            on_subject(data.decode() if isinstance(data, bytes) else str(data))
            except (OSError, RedisError) as exc:
                on_health(False)
                if attempt == 0:
                    log.warning("revocations: not listening (%s); cached keys now expire quickly", exc)
                await asyncio.sleep(RECONNECT_SECONDS[min(attempt, len(RECONNECT_SECONDS) - 1)])
                attempt += 1
