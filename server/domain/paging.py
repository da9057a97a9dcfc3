"""Cursor pagination: opaque page tokens that carry the last id of the previous page."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, Protocol, TypeVar

from server.errors import InvalidArgumentError

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
T = TypeVar("T")


class _Identified(Protocol):
    @property
    def id(self) -> str: ...


Listed = TypeVar("Listed", bound=_Identified)


@dataclasses.dataclass(frozen=True)
class Page(Generic[T]):
    """Some items and the token of the next page ("" on the last one)."""

    items: Sequence[T]
    next_page_token: str


def page_size(requested: int) -> int:
    """The page size to use: the default for 0, at most MAX_PAGE_SIZE."""
    if requested < 0:
        raise InvalidArgumentError("page_size must not be negative", param="page_size")
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def encode_page_token(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


def decode_page_token(token: str) -> str:
    """The last id of the previous page; "" for the first page."""
    if not token:
        return ""
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except ValueError:  # binascii.Error, UnicodeDecodeError, and non-ASCII text b64decode refuses
        raise InvalidArgumentError("page_token is not one this server issued", param="page_token") from None


async def fetch_page(
    fetch: Callable[[str, int], Awaitable[Sequence[Listed]]], size: int, page_token: str
) -> Page[Listed]:
    """One page of `size` (0: the default) after `page_token`. `fetch(after_id, limit)` returns up to `limit`
    items past that cursor in the listing's order; it is asked for one more than the page holds, which tells
    whether there is a next page."""
    limit = page_size(size)
    items = await fetch(decode_page_token(page_token), limit + 1)
    more = len(items) > limit
    items = items[:limit]
    return Page(items, encode_page_token(items[-1].id) if more else "")
