"""Login throttling: too many failed logins for a name or from an address answer 429 for a while."""

from __future__ import annotations

import math

from server.auth import sha256_hex
from server.errors import RateLimitedError
from server.limits.base import FailureAsk, Limiter

MAX_FAILURES = 5
WINDOW_SECONDS = 300.0


class LoginThrottle:
    """Failures per name and per client address, kept by the limiter: with Redis, shared by every replica.

    Keys carry a digest of the name or address, so their length is bounded whatever a client sends.
    """

    def __init__(self, limiter: Limiter, max_failures: int = MAX_FAILURES, window_seconds: float = WINDOW_SECONDS):
        self._limiter = limiter
        self._max = max_failures
        self._window = window_seconds

    async def check(self, name: str, client_ip: str) -> None:
        """Raises RateLimitedError (with the seconds to wait) while either key is over the limit."""
        wait = await self._limiter.failure_wait(self._asks(name, client_ip))
        if wait > 0:
            raise RateLimitedError(
                "too many failed logins; wait before trying again",
                reason="too_many_login_attempts",
                retry_after=math.ceil(wait),
            )

    async def failed(self, name: str, client_ip: str) -> None:
        """Records a failed login."""
        await self._limiter.record_failure(self._asks(name, client_ip))

    async def succeeded(self, name: str) -> None:
        """A good password clears the name's failures (not the address's)."""
        await self._limiter.forget_failures(_key("name", name.lower()))

    def _asks(self, name: str, client_ip: str) -> list[FailureAsk]:
        keys = [_key("name", name.lower())] + ([_key("ip", client_ip)] if client_ip else [])
        return [FailureAsk(key, self._max, self._window) for key in keys]


def _key(kind: str, value: str) -> str:
    return f"login:{kind}:{sha256_hex(value)[:32]}"
