"""What the fake upstream saw and billed: recorded requests, bill entries, prices."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from tests.support.fake_upstream.scenario import Scenario

_MILLION = Decimal(1_000_000)


@dataclasses.dataclass(frozen=True)
class Tokens:
    """Billed tokens, split the Anthropic way: prompt = input + cache_read + cache_write."""

    input: int = 0
    """Uncached prompt tokens."""
    cache_read: int = 0
    cache_write: int = 0
    output: int = 0
    """Output tokens, reasoning included."""
    reasoning: int = 0
    """The reasoning / thinking part of `output`."""

    @property
    def prompt(self) -> int:
        return self.input + self.cache_read + self.cache_write

    def __add__(self, other: Tokens) -> Tokens:
        return Tokens(
            self.input + other.input,
            self.cache_read + other.cache_read,
            self.cache_write + other.cache_write,
            self.output + other.output,
            self.reasoning + other.reasoning,
        )


@dataclasses.dataclass(frozen=True)
class Prices:
    """Upstream prices in USD per million tokens."""

    input: Decimal | str = "0"
    cached_input: Decimal | str = "0"
    cache_write: Decimal | str = "0"
    output: Decimal | str = "0"

    def cost(self, tokens: Tokens) -> Decimal:
        """USD for `tokens`, exact (no rounding)."""
        parts = (
            (self.input, tokens.input),
            (self.cached_input, tokens.cache_read),
            (self.cache_write, tokens.cache_write),
            (self.output, tokens.output),
        )
        return sum((Decimal(price) * count for price, count in parts), Decimal(0)) / _MILLION


@dataclasses.dataclass(frozen=True)
class RecordedRequest:
    """One request as it reached the fake upstream."""

    path: str
    headers: dict[str, str]
    """Lower-cased names; `authorization` / `x-api-key` values replaced by "<redacted>"."""
    body: Any
    """The parsed JSON body (None when it was not JSON)."""
    received_at: float
    """time.monotonic() at arrival."""
    key: str
    """x-request-id / idempotency-key header, else a hash of the body: attempts of one request share it."""
    attempt: int
    """1 for the first request with this key (counted only when the scenario has fail_times)."""
    auth_ok: bool
    scenario: Scenario | None
    """None when the request was refused before its scenario was read."""


@dataclasses.dataclass(frozen=True)
class BillEntry:
    """The tokens the fake upstream bills for one answered request (streams: up to where they ended)."""

    key: str
    api: str
    """openai | deepseek | anthropic | embeddings."""
    model: str
    tokens: Tokens
    outcome: str
    """complete | disconnected | cut | error_event."""


class Ledger:
    """Running bill: every entry (when recording) and per-model totals (always)."""

    def __init__(self, *, keep_entries: bool) -> None:
        self.keep_entries = keep_entries
        self.entries: list[BillEntry] = []
        self.by_model: dict[str, Tokens] = {}

    def add(self, entry: BillEntry) -> None:
        if self.keep_entries:
            self.entries.append(entry)
        self.by_model[entry.model] = self.by_model.get(entry.model, Tokens()) + entry.tokens

    def total(self) -> Tokens:
        return sum(self.by_model.values(), Tokens())

    def for_key(self, key: str) -> list[BillEntry]:
        return [entry for entry in self.entries if entry.key == key]

    def cost(self, prices: Prices | Mapping[str, Prices]) -> Decimal:
        """USD of everything billed: one price list for all models, or one per upstream model name."""
        if isinstance(prices, Prices):
            return prices.cost(self.total())
        return sum((prices[model].cost(tokens) for model, tokens in self.by_model.items()), Decimal(0))

    def clear(self) -> None:
        self.entries.clear()
        self.by_model.clear()


def redact(headers: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """Headers as a dict, secrets replaced."""
    out: dict[str, str] = {}
    for raw_name, raw_value in headers:
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        if name in ("authorization", "x-api-key"):
            value = "<redacted>"
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out
