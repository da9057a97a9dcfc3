"""Prices and costs: USD per million tokens as decimals, costs in integer micro-USD, rounded up once."""

from __future__ import annotations

import dataclasses
import math
from decimal import Decimal, InvalidOperation

from tollgate.v1 import chat_pb2

from server.config import ModelConfig
from server.config_parse import ConfigError


@dataclasses.dataclass(frozen=True)
class Price:
    """A model's prices in USD per million tokens."""

    input: Decimal
    cached_input: Decimal
    cache_write: Decimal
    output: Decimal

    def scaled(self, multiplier: Decimal) -> Price:
        return Price(*(value * multiplier for value in dataclasses.astuple(self)))


@dataclasses.dataclass(frozen=True)
class TokenCounts:
    """The billable parts of a call's usage: input excludes the cached and cache-write tokens."""

    input: int = 0
    cached: int = 0
    cache_write: int = 0
    output: int = 0
    reasoning: int = 0

    @classmethod
    def from_usage(cls, usage: chat_pb2.Usage) -> TokenCounts:
        cached = usage.prompt_tokens_details.cached_tokens
        write = usage.prompt_tokens_details.cache_write_tokens
        return cls(
            input=max(0, usage.prompt_tokens - cached - write),
            cached=cached,
            cache_write=write,
            output=usage.completion_tokens,
            reasoning=usage.completion_tokens_details.reasoning_tokens,
        )


def parse_price(model_id: str, config: ModelConfig) -> Price | None:
    """The model's upstream price, None when it has none; ConfigError on a malformed one."""
    if not config.input_per_mtok and not config.output_per_mtok:
        return None
    try:
        values = [
            Decimal(text or fallback)
            for text, fallback in (
                (config.input_per_mtok, "0"),
                (config.cached_input_per_mtok, config.input_per_mtok or "0"),
                (config.cache_write_per_mtok, config.input_per_mtok or "0"),
                (config.output_per_mtok, "0"),
            )
        ]
    except InvalidOperation:
        raise ConfigError(f'model {model_id}: prices must be decimal strings like "0.27"') from None
    if any(not value.is_finite() or value < 0 for value in values):
        raise ConfigError(f"model {model_id}: prices must be non-negative")
    return Price(*values)


def cost_micros(price: Price, tokens: TokenCounts) -> int:
    """The exact cost in micro-USD, rounded up once: tokens times USD per Mtok is micro-USD already."""
    exact = (
        tokens.input * price.input
        + tokens.cached * price.cached_input
        + tokens.cache_write * price.cache_write
        + tokens.output * price.output
    )
    return math.ceil(exact)


def affordable_output(price: Price, budget_micros: int, prompt_micros: int) -> int:
    """How many output tokens `budget_micros` still pays for after the prompt."""
    if price.output <= 0:
        return 10**9
    return max(0, math.floor((budget_micros - prompt_micros) / price.output))
