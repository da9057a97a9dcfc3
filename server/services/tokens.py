"""TokenService: an account's API tokens, managed with its console session (or by the operator)."""

from __future__ import annotations

from typing import Any

import grpc
from tollgate.v1 import token_pb2, token_pb2_grpc

from server.access import Role
from server.domain.money import parse_usd
from server.domain.records import TokenSettings
from server.domain.tokens import Tokens
from server.errors import InvalidArgumentError
from server.interceptors import current_principal
from server.services.convert import Writable, from_timestamp, masked_changes, reject_output_only, token_message

Context = grpc.aio.ServicerContext[Any, Any]

# update_mask path → how the value is read from the Token message, as a TokenSettings field.
_WRITABLE: Writable[token_pb2.Token] = {
    "name": ("name", lambda token: token.name),
    "spend_cap_usd": ("spend_cap_micros", lambda token: _cap(token)),
    "expire_time": ("expires_at", lambda token: _expiry(token)),
    "allowed_models": ("allowed_models", lambda token: tuple(token.allowed_models)),
    "allowed_ips": ("allowed_ips", lambda token: tuple(token.allowed_ips)),
    "max_concurrency": ("max_concurrency", lambda token: token.max_concurrency),
    "requests_per_minute": ("requests_per_minute", lambda token: token.requests_per_minute),
    "tokens_per_minute": ("tokens_per_minute", lambda token: token.tokens_per_minute),
    "disabled": ("disabled", lambda token: token.disabled),
}


def _cap(token: token_pb2.Token) -> int:
    return parse_usd(token.spend_cap_usd or "0", param="spend_cap_usd")


def _expiry(token: token_pb2.Token) -> Any:
    return from_timestamp(token.expire_time) if token.HasField("expire_time") else None


def _settings(token: token_pb2.Token) -> TokenSettings:
    return TokenSettings(**{field: read(token) for field, read in _WRITABLE.values()})


class TokenServicer(token_pb2_grpc.TokenServiceServicer):
    """Thin adapter over Tokens; an account's tokens are reached only with that account's session."""

    def __init__(self, tokens: Tokens) -> None:
        self._tokens = tokens

    async def CreateToken(
        self, request: token_pb2.CreateTokenRequest, context: Context
    ) -> token_pb2.CreateTokenResponse:
        reject_output_only(request.token, "token.")
        principal = current_principal()
        if principal.role is Role.OPERATOR:
            if not request.account_id:
                raise InvalidArgumentError("the operator must name the account_id of the token", param="account_id")
            account_id = request.account_id
        elif request.account_id:
            raise InvalidArgumentError("account_id is set by the server and cannot be written", param="account_id")
        else:
            account_id = principal.account_id
        token, key = await self._tokens.create(account_id, _settings(request.token))
        return token_pb2.CreateTokenResponse(token=token_message(token), key=key)

    async def ListTokens(self, request: token_pb2.ListTokensRequest, context: Context) -> token_pb2.ListTokensResponse:
        page = await self._tokens.list(current_principal().account_id, request.page_size, request.page_token)
        return token_pb2.ListTokensResponse(
            tokens=[token_message(token) for token in page.items], next_page_token=page.next_page_token
        )

    async def GetToken(self, request: token_pb2.GetTokenRequest, context: Context) -> token_pb2.GetTokenResponse:
        token = await self._tokens.get(current_principal().account_id, request.token_id)
        return token_pb2.GetTokenResponse(token=token_message(token))

    async def UpdateToken(
        self, request: token_pb2.UpdateTokenRequest, context: Context
    ) -> token_pb2.UpdateTokenResponse:
        changes = masked_changes(request.token, request.update_mask, _WRITABLE, "token.")
        token = await self._tokens.update(current_principal().account_id, request.token_id, changes)
        return token_pb2.UpdateTokenResponse(token=token_message(token))

    async def DeleteToken(
        self, request: token_pb2.DeleteTokenRequest, context: Context
    ) -> token_pb2.DeleteTokenResponse:
        await self._tokens.delete(current_principal().account_id, request.token_id)
        return token_pb2.DeleteTokenResponse()
