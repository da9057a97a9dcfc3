"""Money: integer micro-USD everywhere; USD decimal strings only at the edges."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from server.errors import InvalidArgumentError

MICROS_PER_USD = 1_000_000
MAX_MICROS = 10**15  # one billion USD: far above any real amount, far below int64
_SCALE = Decimal(MICROS_PER_USD)


def parse_usd(text: str, *, param: str) -> int:
    """Micro-USD of a non-negative decimal string such as "25" or "0.000001"; at most six decimals."""
    cleaned = text.strip()
    try:
        amount = Decimal(cleaned)
    except InvalidOperation:
        raise InvalidArgumentError(f'{param} must be a decimal amount in USD, like "25.00"', param=param) from None
    if not amount.is_finite() or amount.as_tuple().exponent < -6:  # type: ignore[operator]
        raise InvalidArgumentError(f"{param} must have at most six decimals", param=param)
    micros = int(amount * _SCALE)
    if micros < 0:
        raise InvalidArgumentError(f"{param} must not be negative", param=param)
    if micros > MAX_MICROS:
        raise InvalidArgumentError(f"{param} is too large", param=param)
    return micros


def format_usd(micros: int) -> str:
    """USD with all six decimals, so the figure matches the ledger: 1500000 → "1.500000"."""
    sign = "-" if micros < 0 else ""
    whole, fraction = divmod(abs(micros), MICROS_PER_USD)
    return f"{sign}{whole}.{fraction:06d}"


def parse_multiplier(text: str, *, param: str) -> Decimal:
    """A price multiplier such as "0.9": positive, at most 1 000, at most six decimals."""
    try:
        value = Decimal(text.strip() or "1")
    except InvalidOperation:
        raise InvalidArgumentError(f'{param} must be a decimal number like "0.9"', param=param) from None
    if not value.is_finite() or value <= 0 or value > 1000 or value.as_tuple().exponent < -6:  # type: ignore[operator]
        raise InvalidArgumentError(f"{param} must be a positive number with at most six decimals", param=param)
    return value.normalize()
