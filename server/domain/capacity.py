"""A channel's adaptive capacity: how many calls it gets at once, learned from how it answers.

Additive increase, multiplicative decrease (as TCP does): the allowed number grows by about one per
window of successful calls and halves when the channel says it is overloaded (429, 529) or stops
answering in time, at most once per `cooldown`, never below one or above the configured maximum.
A call over the allowance waits, briefly, in a queue that takes accounts in turn, so one heavy
account cannot starve the others; past the wait or the queue's size it is refused with a retry hint.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable

from server.errors import OverloadedError

DECREASE_FACTOR = 0.5
COOLDOWN_SECONDS = 1.0


class ChannelCapacity:
    """The allowed concurrency of one channel and the fair queue in front of it."""

    def __init__(
        self,
        name: str,
        maximum: int,
        *,
        queue_seconds: float,
        queue_size: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._maximum = max(1, maximum)
        self._allowed = float(self._maximum)
        self._queue_seconds = queue_seconds
        self._queue_size = queue_size
        self._clock = clock
        self._in_flight = 0
        self._waiting: collections.OrderedDict[str, collections.deque[asyncio.Future[None]]] = collections.OrderedDict()
        self._queued = 0
        self._last_decrease = -COOLDOWN_SECONDS

    @property
    def allowed(self) -> int:
        """Calls this channel may have in flight now."""
        return max(1, int(self._allowed))

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def acquire(self, account_id: str) -> None:
        """Takes a place, waiting in turn with other accounts; raises OverloadedError when none comes."""
        if self._in_flight < self.allowed and not self._queued:
            self._in_flight += 1
            return
        if self._queued >= self._queue_size:
            raise self._busy()
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(account_id, collections.deque()).append(waiter)
        self._queued += 1
        try:
            async with asyncio.timeout(self._queue_seconds):
                await waiter  # the releaser counts this call in flight when it hands the place over
        except TimeoutError:
            self._abandon(account_id, waiter)
            raise self._busy() from None
        except BaseException:
            self._abandon(account_id, waiter)
            raise

    def release(self) -> None:
        """Gives a place back: to the next account in turn while the allowance has room, else to the pool."""
        if self._in_flight <= self.allowed and self._hand_over():
            return
        self._in_flight -= 1

    def succeeded(self) -> None:
        """A healthy answer: the allowance grows by about one per allowance's worth of them."""
        self._allowed = min(float(self._maximum), self._allowed + 1 / self._allowed)
        while self._in_flight < self.allowed and self._hand_over(new_place=True):
            pass

    def overloaded(self) -> None:
        """The channel pushed back (429, 529, a timeout): the allowance halves, once per cooldown."""
        now = self._clock()
        if now - self._last_decrease >= COOLDOWN_SECONDS:
            self._allowed = max(1.0, self._allowed * DECREASE_FACTOR)
            self._last_decrease = now

    def _hand_over(self, *, new_place: bool = False) -> bool:
        """Wakes the first waiter of the account whose turn it is; False when nobody waits."""
        while self._waiting:
            account_id, queue = next(iter(self._waiting.items()))
            waiter = queue.popleft()
            self._queued -= 1
            if queue:
                self._waiting.move_to_end(account_id)  # this account had its turn
            else:
                del self._waiting[account_id]
            if not waiter.done():
                waiter.set_result(None)
                if new_place:
                    self._in_flight += 1
                return True
        return False

    def _abandon(self, account_id: str, waiter: asyncio.Future[None]) -> None:
        """A waiter that stops waiting: out of the queue, or, if its place had just come, the place handed on."""
        if waiter.done() and not waiter.cancelled():
            self.release()
        else:
            self._forget(account_id, waiter)

    def _forget(self, account_id: str, waiter: asyncio.Future[None]) -> None:
        queue = self._waiting.get(account_id)
        if queue is not None and waiter in queue:
            queue.remove(waiter)
            self._queued -= 1
            if not queue:
                del self._waiting[account_id]

    def _busy(self) -> OverloadedError:
        return OverloadedError(f"channel {self.name} is at capacity", retry_after=1.0)
