"""A channel's circuit breaker: open after consecutive failures, then one half-open probe at a time."""

from __future__ import annotations

import time
from collections.abc import Callable


class CircuitBreaker:
    """Closed → (N consecutive failures) → open for a while → half-open: one probe decides."""

    def __init__(self, failures: int, open_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._threshold = failures
        self._open_seconds = open_seconds
        self._clock = clock
        self._failures = 0
        self._open_until = 0.0
        self._probing = False
        self.failures_total = 0
        """Every failure recorded, for metrics."""

    @property
    def state(self) -> str:
        """closed | open | half_open, for metrics and logs."""
        if self._failures < self._threshold:
            return "closed"
        return "open" if self._clock() < self._open_until else "half_open"

    def allow(self) -> bool:
        """Whether a call may go now; in the half-open state this claims the one probe."""
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._probing:
            self._probing = True
            return True
        return False

    def retry_in(self) -> float:
        """Seconds until the breaker lets a probe through (0 when it would now)."""
        return max(0.0, self._open_until - self._clock()) if self.state == "open" else 0.0

    def succeeded(self) -> None:
        self._failures = 0
        self._probing = False

    def failed(self) -> None:
        self.failures_total += 1
        self._failures += 1
        if self._probing or self._failures >= self._threshold:
            self._failures = max(self._failures, self._threshold)
            self._open_until = self._clock() + self._open_seconds
        self._probing = False
