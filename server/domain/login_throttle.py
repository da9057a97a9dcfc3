"""Login throttling: too many failed logins for a name or from an address answer 429 for a while."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

from server.errors import RateLimitedError


class LoginThrottle:
    """Counts failures per name and per client address in a sliding window (this process only)."""

    def __init__(
        self,
        max_failures: int = 5,
        window_seconds: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self._max = max_failures
        self._window = window_seconds
        self._clock = clock
        self._max_keys = max_keys
        self._failures: dict[str, deque[float]] = {}

    def check(self, name: str, client_ip: str) -> None:
        """Raises RateLimitedError (with the seconds to wait) while either key is over the limit."""
        now = self._clock()
        wait = max(self._wait(f"name:{name.lower()}", now), self._wait(f"ip:{client_ip}", now) if client_ip else 0.0)
        if wait > 0:
            raise RateLimitedError(
                "too many failed logins; wait before trying again",
                reason="too_many_login_attempts",
                retry_after=math.ceil(wait),
            )

    def failed(self, name: str, client_ip: str) -> None:
        """Records a failed login."""
        now = self._clock()
        keys = [f"name:{name.lower()}"] + ([f"ip:{client_ip}"] if client_ip else [])
        if len(self._failures) >= self._max_keys:
            self._forget_expired(now)
        for key in keys:
            self._failures.setdefault(key, deque(maxlen=self._max)).append(now)

    def succeeded(self, name: str) -> None:
        """A good password clears the name's failures (not the address's)."""
        self._failures.pop(f"name:{name.lower()}", None)

    def _wait(self, key: str, now: float) -> float:
        times = self._failures.get(key)
        if times is None or len(times) < self._max:
            return 0.0
        return max(0.0, times[0] + self._window - now)

    def _forget_expired(self, now: float) -> None:
        for key in [key for key, times in self._failures.items() if times[-1] + self._window <= now]:
            del self._failures[key]
