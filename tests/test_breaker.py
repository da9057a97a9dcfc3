"""The circuit breaker and the retry budget, on a fake clock."""

from __future__ import annotations

from server.domain.breaker import CircuitBreaker
from server.domain.retry_budget import RetryBudget


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_consecutive_failures_then_probes_once() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=3, open_seconds=30, clock=clock)
    for _ in range(2):
        breaker.failed()
    breaker.succeeded()  # a success resets the count
    for _ in range(3):
        assert breaker.allow()
        breaker.failed()
    assert breaker.state == "open" and not breaker.allow()
    assert breaker.retry_in() == 30
    clock.now += 30
    assert breaker.state == "half_open"
    assert breaker.allow()  # the one probe
    assert not breaker.allow()  # no second probe while it runs
    breaker.failed()
    assert breaker.state == "open" and breaker.retry_in() == 30
    clock.now += 30
    assert breaker.allow()
    breaker.succeeded()
    assert breaker.state == "closed" and breaker.allow() and breaker.allow()


def test_retry_budget_allows_a_share_of_first_attempts() -> None:
    budget = RetryBudget(ratio=0.2, reserve=2, capacity=100)
    assert budget.try_spend() and budget.try_spend()
    assert not budget.try_spend()
    for _ in range(10):
        budget.attempted()
    assert budget.try_spend() and budget.try_spend()
    assert not budget.try_spend()
