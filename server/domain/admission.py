"""Admission: whether a relayed request may start now, decided before its hold is taken.

The process's cap on open requests first (503 overloaded, decided here); then, in one call to the
limiter (one round trip to Redis), the token's concurrency slot (a lease, renewed while the request
runs and released however it ends) with the requests-per-minute and tokens-per-minute windows of the
token and of its account (429 with a retry hint, naming the first refusal in that order). The limiter
keeps all of them or none. Tokens are counted when admitted (prompt estimate plus the client's
max_tokens) and corrected to what the call really used when it ends.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from server.config import LimitsConfig
from server.domain.records import ApiToken
from server.errors import InvalidArgumentError, OverloadedError, RateLimitedError
from server.limits.base import Correction, LeaseAsk, Limiter, Taken, WindowAsk

log = logging.getLogger(__name__)
WINDOW_SECONDS = 60.0
CONCURRENCY_RETRY_SECONDS = 1.0


def lease_key(token_id: str) -> str:
    """The set of a token's concurrency leases (hash tag: one Redis Cluster slot per token)."""
    return f"{{tok:{token_id}}}:leases"


@dataclasses.dataclass(frozen=True)
class _Window:
    """A per-minute window asked of the limiter, and how a refusal by it is named."""

    ask: WindowAsk
    owner: str
    unit: str


def _raise_refusal(lease: LeaseAsk, taken: Taken, windows: list[_Window]) -> None:
    """Raises RateLimitedError for the first refusal, in the order lease, then windows; nothing if admitted."""
    if not taken.lease:
        raise RateLimitedError(
            f"this token already has {lease.limit} requests in flight; retry when one ends",
            retry_after=CONCURRENCY_RETRY_SECONDS,
        )
    for window, result in zip(windows, taken.windows, strict=False):  # it ends at a refusal
        if not result.admitted:
            raise RateLimitedError(
                f"the {window.owner}'s limit of {window.ask.limit} {window.unit} per minute is reached",
                retry_after=max(result.retry_after, 0.1),
            )


@dataclasses.dataclass
class Ticket:
    """An admitted request's slot and counts; `finish` gives them back once, with the tokens used."""

    _admission: Admission
    _lease: tuple[str, str] | None
    _counted_tokens: int
    _token_windows: list[tuple[str, int]]
    _finished: bool = False

    def finish(self, used_tokens: int | None = None) -> None:
        """Frees the slot and corrects the token windows to `used_tokens` (None keeps the admitted count).

        Synchronous, so it also runs for a caller being cancelled: this process forgets the lease at
        once (no more renewals), and the limiter is told in a tracked task.
        """
        if self._finished:
            return
        self._finished = True
        self._admission._give_back(self, used_tokens)

    def release_slot(self) -> None:
        """Frees only the concurrency slot, now: the client has gone while Tollgate still drains its upstream.

        The token windows are corrected later by `finish`, once the tokens used are known.
        """
        if not self._finished and self._lease is not None:
            self._admission._tell_limiter_later(self._lease, [])
            self._lease = None


class Admission:
    """Decides admission over a Limiter (process memory or Redis) and keeps held leases alive."""

    def __init__(self, limiter: Limiter, config: LimitsConfig) -> None:
        self._limiter = limiter
        self._config = config
        self._open = 0
        self._leases: dict[str, set[str]] = {}
        self._renewer: asyncio.Task[None] | None = None
        self._returning: set[asyncio.Task[None]] = set()
        self._next_lease = 0

    @property
    def open_requests(self) -> int:
        return self._open

    async def admit(self, token: ApiToken, request_id: str, tokens: int) -> Ticket:
        """A ticket for one request counting `tokens` tokens; raises OverloadedError or RateLimitedError."""
        if self._open >= self._config.max_open_requests:
            raise OverloadedError("Tollgate is at capacity; retry shortly", retry_after=CONCURRENCY_RETRY_SECONDS)
        windows = self._windows(token, tokens)
        self._next_lease += 1
        lease = LeaseAsk(
            lease_key(token.id),
            f"{request_id}:{self._next_lease}",  # unique even if a client reuses a request id
            token.max_concurrency or self._config.token_concurrency,
            self._config.lease_seconds,
        )
        self._open += 1
        try:
            taken = await self._limiter.take(lease, [window.ask for window in windows])
            _raise_refusal(lease, taken, windows)
        except BaseException:
            self._open -= 1
            raise
        self._leases.setdefault(lease.key, set()).add(lease.lease_id)
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.create_task(self._renew_forever(), name="lease renewal")
        counted = [
            (window.ask.key, result.bucket)
            for window, result in zip(windows, taken.windows, strict=True)
            if window.unit == "tokens"
        ]
        return Ticket(self, (lease.key, lease.lease_id), tokens, counted)

    async def held(self, token_id: str) -> int:
        """Concurrency slots the token holds now, across every process sharing the limiter."""
        return await self._limiter.held_leases(lease_key(token_id))

    async def close(self) -> None:
        """Returns what finished requests held, stops renewing, and closes the limiter."""
        if self._returning:
            await asyncio.wait(set(self._returning), timeout=5.0)
        if self._renewer is not None:
            self._renewer.cancel()
            await asyncio.gather(self._renewer, return_exceptions=True)
        await self._limiter.close()

    def _windows(self, token: ApiToken, tokens: int) -> list[_Window]:
        """The per-minute windows that have a limit, in the order a refusal names them."""
        config = self._config
        limits = (
            (f"{{tok:{token.id}}}:rpm", 1, token.requests_per_minute, "token", "requests"),
            (f"{{acc:{token.account_id}}}:rpm", 1, config.account_requests_per_minute, "account", "requests"),
            (f"{{tok:{token.id}}}:tpm", tokens, token.tokens_per_minute, "token", "tokens"),
            (f"{{acc:{token.account_id}}}:tpm", tokens, config.account_tokens_per_minute, "account", "tokens"),
        )
        windows = []
        for key, amount, limit, owner, unit in limits:
            if limit <= 0:
                continue
            if amount > limit:
                raise InvalidArgumentError(
                    f"this request needs about {amount} {unit}, more than the {owner}'s limit of {limit} per minute;"
                    " lower max_tokens or shorten the prompt",
                    param="max_tokens",
                )
            windows.append(_Window(WindowAsk(key, amount, limit, WINDOW_SECONDS), owner, unit))
        return windows

    def _give_back(self, ticket: Ticket, used_tokens: int | None) -> None:
        self._open -= 1
        corrections = []
        if used_tokens is not None and used_tokens != ticket._counted_tokens:
            delta = used_tokens - ticket._counted_tokens
            corrections = [Correction(key, bucket, delta, WINDOW_SECONDS) for key, bucket in ticket._token_windows]
        self._tell_limiter_later(ticket._lease, corrections)

    def _tell_limiter_later(self, lease: tuple[str, str] | None, corrections: list[Correction]) -> None:
        """Forgets the lease here at once (no more renewals); tells the limiter in a tracked task."""
        if lease is not None:
            key, lease_id = lease
            held = self._leases.get(key)
            if held is not None:
                held.discard(lease_id)
                if not held:
                    del self._leases[key]
        if lease is None and not corrections:
            return
        task = asyncio.create_task(self._tell_limiter(lease, corrections), name="limits release")
        self._returning.add(task)
        task.add_done_callback(self._returning.discard)

    async def _tell_limiter(self, lease: tuple[str, str] | None, corrections: list[Correction]) -> None:
        try:
            await self._limiter.give_back(lease, corrections)
        except Exception:  # the lease expires by itself; a request that ended must never fail here
            log.exception("limits: returning a slot failed; its lease will expire")

    async def _renew_forever(self) -> None:
        """Every third of a lease, pushes every held lease's expiry ahead: long streams keep their slot."""
        ttl = self._config.lease_seconds
        while self._leases:
            await asyncio.sleep(ttl / 3)
            try:
                await self._limiter.renew_leases({key: sorted(ids) for key, ids in self._leases.items()}, ttl)
            except Exception:
                log.exception("limits: renewing leases failed; will try again")
