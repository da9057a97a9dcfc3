"""API tokens: created with a key shown once, listed, changed, deleted, and checked on every call."""

from __future__ import annotations

import dataclasses
import ipaddress
import secrets
from collections.abc import Collection, Mapping
from typing import Any

from server.access import Principal, Role
from server.auth import sha256_hex
from server.domain.clock import utcnow
from server.domain.ids import new_id
from server.domain.paging import Page, fetch_page
from server.domain.records import ApiToken, TokenSettings
from server.domain.token_cache import TokenCache
from server.errors import AuthenticationError, InvalidArgumentError, NotFoundError, PermissionDeniedError
from server.storage.base import TokenStore

KEY_PREFIX = "sk-"
MAX_NAME = 100
MAX_CONCURRENCY = 10_000
MAX_LIST = 100


def new_key() -> str:
    """`sk-` and 48 URL-safe characters from `secrets` (288 bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(36)


def mask_key(key: str) -> str:
    """What lists show of a key: its first and last four characters after the prefix."""
    body = key[len(KEY_PREFIX) :]
    return f"{KEY_PREFIX}{body[:4]}…{body[-4:]}"


class Tokens:
    """An account's API tokens, and authentication by key."""

    def __init__(self, store: TokenStore, known_models: Collection[str], cache: TokenCache) -> None:
        self._store = store
        self._known_models = frozenset(known_models)
        self._cache = cache

    async def create(self, account_id: str, settings: TokenSettings) -> tuple[ApiToken, str]:
        """The new token and its key, which is returned only here."""
        self._validate(settings, fields=None)
        if settings.expires_at is not None and settings.expires_at <= utcnow():
            raise InvalidArgumentError("expire_time must be in the future", param="expire_time")
        key = new_key()
        token = ApiToken(
            id=new_id("tok"),
            account_id=account_id,
            key_hash=sha256_hex(key),
            masked_key=mask_key(key),
            spent_micros=0,
            created_at=utcnow(),
            last_used_at=None,
            **vars(settings),
        )
        await self._store.insert_token(token)
        return token, key

    async def get(self, account_id: str, token_id: str) -> ApiToken:
        token = await self._store.get_token(account_id, token_id)
        if token is None:
            raise NotFoundError("no such token", param="token_id")
        return token

    async def list(self, account_id: str, size: int, page_token: str) -> Page[ApiToken]:
        return await fetch_page(
            lambda after_id, limit: self._store.list_tokens(account_id, after_id, limit), size, page_token
        )

    async def update(self, account_id: str, token_id: str, changes: Mapping[str, Any]) -> ApiToken:
        """Sets the named settings; an account's token is found only by that account."""
        current = await self.get(account_id, token_id)
        self._validate(dataclasses.replace(current, **changes), fields=changes.keys())
        updated = await self._store.update_token(account_id, token_id, changes)
        if updated is None:
            raise NotFoundError("no such token", param="token_id")
        await self._cache.revoke_token(token_id)
        return updated

    async def delete(self, account_id: str, token_id: str) -> None:
        if not await self._store.delete_token(account_id, token_id, utcnow()):
            raise NotFoundError("no such token", param="token_id")
        await self._cache.revoke_token(token_id)

    async def authenticate(self, credential: str, client_ip: str) -> Principal | None:
        """Authenticator of API keys: refuses deleted, disabled, expired and out-of-network uses."""
        if not credential.startswith(KEY_PREFIX):
            return None
        found = await self._cache.lookup(sha256_hex(credential), self._store.find_token_by_key_hash)
        if found is None:
            raise AuthenticationError("incorrect API key provided")
        token, account_disabled = found
        if token.disabled or account_disabled:
            raise AuthenticationError("this API key is disabled")
        if token.expires_at is not None and token.expires_at <= utcnow():
            raise AuthenticationError("this API key has expired")
        if token.allowed_ips and not _address_allowed(client_ip, token.allowed_ips):
            raise PermissionDeniedError("this API key may not be used from this address", reason="ip_not_allowed")
        return Principal(Role.API_TOKEN, account_id=token.account_id, token=token)

    def _validate(self, settings: TokenSettings, fields: Collection[str] | None) -> None:
        def checks(field: str) -> bool:
            return fields is None or field in fields

        if checks("name") and not 1 <= len(settings.name.strip()) <= MAX_NAME:
            raise InvalidArgumentError(f"name must have 1 to {MAX_NAME} characters", param="name")
        if checks("allowed_models"):
            unknown = sorted(set(settings.allowed_models) - self._known_models)
            if unknown:
                raise InvalidArgumentError(
                    f"unknown model(s) in allowed_models: {', '.join(unknown)}", param="allowed_models"
                )
            if len(settings.allowed_models) > MAX_LIST:
                raise InvalidArgumentError("allowed_models is too long", param="allowed_models")
        if checks("allowed_ips"):
            if len(settings.allowed_ips) > MAX_LIST:
                raise InvalidArgumentError("allowed_ips is too long", param="allowed_ips")
            for entry in settings.allowed_ips:
                try:
                    ipaddress.ip_network(entry, strict=False)
                except ValueError:
                    raise InvalidArgumentError(
                        f"{entry!r} is not an address or CIDR block", param="allowed_ips"
                    ) from None
        if checks("max_concurrency") and not 0 <= settings.max_concurrency <= MAX_CONCURRENCY:
            raise InvalidArgumentError(f"max_concurrency must be 0 to {MAX_CONCURRENCY}", param="max_concurrency")
        for field in ("requests_per_minute", "tokens_per_minute"):
            if checks(field) and getattr(settings, field) < 0:
                raise InvalidArgumentError(f"{field} must not be negative", param=field)


def _address_allowed(client_ip: str, allowed: Collection[str]) -> bool:
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(entry, strict=False) for entry in allowed)
