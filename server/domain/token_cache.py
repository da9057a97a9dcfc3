"""A short-lived cache of API-key look-ups, emptied at once wherever a token or account is revoked.

Authenticating every relayed call against the database costs a read per request. This cache keeps a
look-up (found or not) for `ttl` seconds, bounded to `max_entries` (least recently used first out).
Revoking (a token edited, disabled or deleted; an account disabled) forgets the affected entries
here and tells the other replicas through the revocation bus, which forget theirs within
milliseconds. While no bus is listening (no Redis configured, or Redis down), entries live only
`backstop_ttl` seconds, so a change made elsewhere (another replica, `tollgate` admin commands on
the database) still takes effect soon; when the bus comes back, everything cached is forgotten,
since revocations may have been missed meanwhile.
"""

from __future__ import annotations

import collections
import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from server.domain.records import ApiToken

Found = tuple[ApiToken, bool] | None
"""What the store said of a key hash: the token and whether its account is disabled, or nothing."""


class RevocationPublisher(Protocol):
    async def publish(self, subject: str) -> None:
        """Tells the other replicas to forget `subject` (`token:<id>` or `account:<id>`)."""
        ...


@dataclasses.dataclass
class _Entry:
    found: Found
    stored_at: float


class TokenCache:
    """Key hash → look-up result, per process, invalidated by revocations from any replica."""

    def __init__(
        self,
        *,
        ttl: float,
        backstop_ttl: float,
        max_entries: int = 100_000,
        publisher: RevocationPublisher | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl
        self._backstop_ttl = backstop_ttl
        self._max_entries = max_entries
        self._publisher = publisher
        self._clock = clock
        self._entries: collections.OrderedDict[str, _Entry] = collections.OrderedDict()
        self.bus_healthy = False
        """Whether revocations from other replicas (and admin commands) arrive; set by the bus listener."""

    async def lookup(self, key_hash: str, load: Callable[[str], Awaitable[Found]]) -> Found:
        now = self._clock()
        entry = self._entries.get(key_hash)
        ttl = self._ttl if self.bus_healthy else self._backstop_ttl
        if entry is not None and now - entry.stored_at < ttl:
            self._entries.move_to_end(key_hash)
            return entry.found
        found = await load(key_hash)
        self._entries[key_hash] = _Entry(found, now)
        self._entries.move_to_end(key_hash)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
        return found

    def follow_bus(self, listening: bool) -> None:
        """The bus listener's report: while it is not listening, entries live only the backstop TTL."""
        self.bus_healthy = listening

    async def revoke_token(self, token_id: str) -> None:
        await self._revoke(f"token:{token_id}")

    async def revoke_account(self, account_id: str) -> None:
        await self._revoke(f"account:{account_id}")

    def forget(self, subject: str) -> None:
        """Drops what `subject` names: `token:<id>`, `account:<id>`, or `*` for everything."""
        kind, _, ident = subject.partition(":")
        if kind == "*":
            self._entries.clear()
            return
        for key_hash in [key for key, entry in self._entries.items() if _names(entry.found, kind, ident)]:
            del self._entries[key_hash]

    async def _revoke(self, subject: str) -> None:
        self.forget(subject)
        if self._publisher is not None:
            await self._publisher.publish(subject)


def _names(found: Found, kind: str, ident: str) -> bool:
    if found is None:
        return False
    token = found[0]
    return (kind == "token" and token.id == ident) or (kind == "account" and token.account_id == ident)
