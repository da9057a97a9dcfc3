"""Who may call what: every gRPC method of the server with the roles allowed to call it.

REST routes reach the server through the gateway's gRPC channel, so this one table guards both doors.
A method missing here is refused (fail closed), and a test walks every registered method against it.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping

from server.domain.records import ApiToken


class Role(enum.Enum):
    """The kinds of caller."""

    PUBLIC = "public"
    """No credential needed."""
    API_TOKEN = "api_token"
    """An account's API key (`sk-…`): model calls only."""
    SESSION = "session"
    """An account's console session: its own tokens, logs and balance."""
    OPERATOR = "operator"
    """The site operator's key: accounts and credits."""


@dataclasses.dataclass(frozen=True)
class Principal:
    """The authenticated caller of one request."""

    role: Role
    account_id: str = ""
    token: ApiToken | None = None
    """The API token of an API_TOKEN caller, with its limits and allow-lists."""
    session_hash: str = ""
    """The session of a SESSION (or operator console) caller, by the hash of its token."""


ANONYMOUS = Principal(Role.PUBLIC)

_PUBLIC = frozenset({Role.PUBLIC})
_TOKEN = frozenset({Role.API_TOKEN})
_SESSION = frozenset({Role.SESSION})
_SESSION_OR_OPERATOR = frozenset({Role.SESSION, Role.OPERATOR})
_OPERATOR = frozenset({Role.OPERATOR})

_RELAY = "/tollgate.v1.RelayService/"
_TOKENS = "/tollgate.v1.TokenService/"
_BILLING = "/tollgate.v1.BillingService/"
_ACCOUNTS = "/tollgate.v1.AccountService/"

ACCESS: Mapping[str, frozenset[Role]] = {
    "/grpc.health.v1.Health/Check": _PUBLIC,
    "/grpc.health.v1.Health/Watch": _PUBLIC,
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": _PUBLIC,
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo": _PUBLIC,
    _RELAY + "CreateChatCompletion": _TOKEN,
    _RELAY + "StreamChatCompletion": _TOKEN,
    _RELAY + "ListModels": _TOKEN,
    _RELAY + "GetModel": _TOKEN,
    _RELAY + "CreateEmbedding": _TOKEN,
    _RELAY + "CreateMessage": _TOKEN,
    _RELAY + "StreamMessage": _TOKEN,
    _RELAY + "CountMessageTokens": _TOKEN,
    _TOKENS + "CreateToken": _SESSION_OR_OPERATOR,
    _TOKENS + "ListTokens": _SESSION,
    _TOKENS + "GetToken": _SESSION,
    _TOKENS + "UpdateToken": _SESSION,
    _TOKENS + "DeleteToken": _SESSION,
    _BILLING + "GetBalance": _SESSION,
    _BILLING + "ListUsageLogs": _SESSION_OR_OPERATOR,  # the operator names the account
    _BILLING + "ListLedgerEntries": _SESSION_OR_OPERATOR,  # the operator names the account
    _BILLING + "GetUsageSummary": _SESSION_OR_OPERATOR,  # the operator names the account
    _BILLING + "ListPrices": _SESSION,
    _BILLING + "GetSubscription": _TOKEN,
    _BILLING + "GetDashboardUsage": _TOKEN,
    _ACCOUNTS + "CreateAccount": _OPERATOR,
    _ACCOUNTS + "ListAccounts": _OPERATOR,
    _ACCOUNTS + "GetAccount": _OPERATOR,
    _ACCOUNTS + "DisableAccount": _OPERATOR,
    _ACCOUNTS + "UpdateAccount": _OPERATOR,
    _ACCOUNTS + "SetAccountPassword": _OPERATOR,
    _ACCOUNTS + "ChangePassword": _SESSION,
    _ACCOUNTS + "CreditAccount": _OPERATOR,
    _ACCOUNTS + "DebitAccount": _OPERATOR,
    _ACCOUNTS + "CreateSession": _PUBLIC,
    _ACCOUNTS + "DeleteSession": _SESSION_OR_OPERATOR,
}
