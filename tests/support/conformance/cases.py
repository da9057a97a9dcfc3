"""The conformance table: each relay case with the one meaning every door must give it.

A case's error is one OpenAI error code, which is also the google.rpc.ErrorInfo reason; its HTTP status and
gRPC code are both stated, and `HTTP_BY_GRPC` asserts that the pair is the gateway's documented mapping.
Charges are integer micro-USD: deepseek-chat costs $0.27 / $1.10 per 1M input / output tokens, and the fake
upstream counts "hello" as 2 prompt tokens and answers 8 words, so one call is ceil(2 * 0.27 + 8 * 1.10) = 10.
"""

from __future__ import annotations

import dataclasses
import enum

import grpc

from tests.support.conformance.outcome import Op


class Setup(enum.Enum):
    """Who calls: a funded account's own token (the default), or a broken credential."""

    TOKEN = "token"
    EMPTY_ACCOUNT = "empty_account"
    UNKNOWN_KEY = "unknown_key"
    DELETED_AFTER_FIRST_CALL = "deleted_after_first_call"
    SLOT_HELD = "slot_held"
    """Another stream of the same token holds its only concurrency slot during the call."""


@dataclasses.dataclass(frozen=True)
class Row:
    """A usage-log row of the case's token: the columns that carry meaning."""

    status: str
    stream: bool
    estimated: bool = False


@dataclasses.dataclass(frozen=True)
class Case:
    """A request (made `calls` times; the last one's outcome is checked) and what it must mean."""

    name: str
    op: Op
    model: str = "deepseek-chat"
    text: str = "hello"
    setup: Setup = Setup.TOKEN
    token: dict[str, object] = dataclasses.field(default_factory=dict)
    calls: int = 1
    cancel_after: int | None = None
    error: str = ""
    http_status: int = 200
    grpc_code: grpc.StatusCode = grpc.StatusCode.OK
    error_type: str | None = None
    text_prefix: str = ""
    completion_tokens: int | None = None
    model_ids: frozenset[str] = frozenset()
    vectors: int = 0
    charge_micros: int | None = 0
    """The token's total spend after all calls; None when it can only be bounded (see the cancel case)."""
    rows: tuple[Row, ...] = ()


# grpc-gateway's table (DESIGN.md §2), written out here so the suite fails if the gateway drifts from it.
HTTP_BY_GRPC = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}
# OpenAI statuses that gRPC has no code for: the reason decides.
HTTP_BY_REASON = {"insufficient_quota": 402}

OK_CHAT = Row("ok", stream=False)
OK_STREAM = Row("ok", stream=True)
CHAT_MODELS = frozenset({"deepseek-chat", "deepseek-reasoner", "claude-haiku-4-5"})

CASES = (
    Case("chat", Op.CHAT, text_prefix="Echo: hello", completion_tokens=8, charge_micros=10, rows=(OK_CHAT,)),
    Case("stream", Op.STREAM, text_prefix="Echo: hello", completion_tokens=8, charge_micros=10, rows=(OK_STREAM,)),
    Case("models", Op.MODELS, model_ids=CHAT_MODELS),
    # 2 prompt tokens at $0.02 per 1M, rounded up once to the micro-dollar.
    Case("embeddings", Op.EMBED, model="text-embedding-3-small", vectors=1, charge_micros=1, rows=(OK_CHAT,)),
    Case(
        "unknown_key",
        Op.CHAT,
        setup=Setup.UNKNOWN_KEY,
        error="invalid_api_key",
        http_status=401,
        grpc_code=grpc.StatusCode.UNAUTHENTICATED,
        error_type="invalid_request_error",
    ),
    Case(
        "no_balance",
        Op.CHAT,
        setup=Setup.EMPTY_ACCOUNT,
        error="insufficient_quota",
        http_status=402,
        grpc_code=grpc.StatusCode.FAILED_PRECONDITION,
        error_type="insufficient_quota",
    ),
    Case(
        "model_not_allowed",
        Op.CHAT,
        token={"allowed_models": ["claude-haiku-4-5"]},
        error="model_not_allowed",
        http_status=403,
        grpc_code=grpc.StatusCode.PERMISSION_DENIED,
        error_type="invalid_request_error",
    ),
    Case(
        "model_not_found",
        Op.CHAT,
        model="no-such-model",
        error="model_not_found",
        http_status=404,
        grpc_code=grpc.StatusCode.NOT_FOUND,
        error_type="invalid_request_error",
    ),
    Case(
        "requests_per_minute",
        Op.CHAT,
        token={"requests_per_minute": 1},
        calls=2,
        error="rate_limit_exceeded",
        http_status=429,
        grpc_code=grpc.StatusCode.RESOURCE_EXHAUSTED,
        error_type="rate_limit_error",
        charge_micros=10,
        rows=(OK_CHAT,),
    ),
    Case(
        "concurrency",
        Op.CHAT,
        setup=Setup.SLOT_HELD,
        token={"max_concurrency": 1},
        error="rate_limit_exceeded",
        http_status=429,
        grpc_code=grpc.StatusCode.RESOURCE_EXHAUSTED,
        error_type="rate_limit_error",
        charge_micros=None,  # the holder's cancelled stream, billed from its drained upstream usage
        rows=(Row("cancelled", stream=True),),
    ),
    Case(
        "context_length_exceeded",
        Op.CHAT,
        text="x" * 300_000,
        error="context_length_exceeded",
        http_status=400,
        grpc_code=grpc.StatusCode.INVALID_ARGUMENT,
        error_type="invalid_request_error",
    ),
    Case(
        "upstream_unavailable",
        Op.CHAT,
        text="[[scenario: status=503]]",
        error="upstream_error",
        http_status=503,
        grpc_code=grpc.StatusCode.UNAVAILABLE,
        error_type="server_error",
        rows=(Row("upstream_error", stream=False, estimated=True),),
    ),
    Case(
        "upstream_unavailable_stream",
        Op.STREAM,
        text="[[scenario: status=503]]",
        error="upstream_error",
        http_status=503,
        grpc_code=grpc.StatusCode.UNAVAILABLE,
        error_type="server_error",
        rows=(Row("upstream_error", stream=True, estimated=True),),
    ),
    Case(
        "upstream_timeout",
        Op.CHAT,
        text="[[scenario: first_byte_ms=3000]]",
        error="upstream_timeout",
        http_status=504,
        grpc_code=grpc.StatusCode.DEADLINE_EXCEEDED,
        error_type="server_error",
        rows=(Row("upstream_timeout", stream=False, estimated=True),),
    ),
    Case(
        "client_cancel_mid_stream",
        Op.STREAM,
        text="[[scenario: chunks=200,chunk_interval_ms=20]]",
        cancel_after=3,
        text_prefix="Echo:",
        charge_micros=None,  # what the upstream generated: drained after the client left, its usage billed
        rows=(Row("cancelled", stream=True),),
    ),
    Case(
        "token_deleted_between_calls",
        Op.CHAT,
        setup=Setup.DELETED_AFTER_FIRST_CALL,
        calls=2,
        error="invalid_api_key",
        http_status=401,
        grpc_code=grpc.StatusCode.UNAUTHENTICATED,
        error_type="invalid_request_error",
        charge_micros=10,
        rows=(OK_CHAT,),
    ),
)
