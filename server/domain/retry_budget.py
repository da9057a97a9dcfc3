"""A retry budget: retries may add at most a fixed share of load, so a failing upstream is not stormed."""

from __future__ import annotations

_MILLI = 1000


class RetryBudget:
    """A token bucket: every first attempt deposits `ratio` tokens, every retry spends one.

    Kept in thousandths of a token, as integers, so that ten deposits of 0.2 make exactly two.
    """

    def __init__(self, ratio: float, reserve: float = 10.0, capacity: float = 100.0) -> None:
        self._deposit = round(ratio * _MILLI)
        self._capacity = round(capacity * _MILLI)
        self._tokens = round(reserve * _MILLI)  # a quiet process can still retry its first failures

    def attempted(self) -> None:
        """A request made its first attempt."""
        self._tokens = min(self._capacity, self._tokens + self._deposit)

    def try_spend(self) -> bool:
        """Takes one retry from the budget; False when it is exhausted."""
        if self._tokens < _MILLI:
            return False
        self._tokens -= _MILLI
        return True
