"""The one error tree of Tollgate's domain; the gRPC edge turns each kind into a status with details.

    TollgateError
    ├── InvalidArgumentError       INVALID_ARGUMENT     invalid_request_error
    │   └── ContextLengthExceededError                  context_length_exceeded
    ├── FailedPreconditionError    FAILED_PRECONDITION  failed_precondition
    │   └── InsufficientQuotaError                      insufficient_quota
    ├── AuthenticationError        UNAUTHENTICATED      invalid_api_key
    ├── PermissionDeniedError      PERMISSION_DENIED    permission_denied
    ├── NotFoundError              NOT_FOUND            not_found
    ├── AlreadyExistsError         ALREADY_EXISTS       already_exists
    ├── ConflictError              ABORTED              conflict
    ├── RateLimitedError           RESOURCE_EXHAUSTED   rate_limit_exceeded
    ├── UnavailableError           UNAVAILABLE          service_unavailable
    │   ├── DatabaseUnavailableError                    database_unavailable
    │   ├── OverloadedError                             overloaded
    │   └── UpstreamError                               upstream_error
    ├── UpstreamTimeoutError       DEADLINE_EXCEEDED    upstream_timeout
    └── InternalError              INTERNAL             internal_error

Each class declares its status code, its reason (the OpenAI error `code`, also the google.rpc.ErrorInfo
reason) and its OpenAI error `type`. Messages are shown to clients: never put a secret in one.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, ClassVar

ERROR_DOMAIN = "tollgate"


class StatusCode(enum.IntEnum):
    """gRPC status codes, mirrored so the domain needs no grpc import."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


class TollgateError(Exception):
    """Base of every error the domain raises on purpose."""

    status: ClassVar[StatusCode] = StatusCode.INTERNAL
    reason: ClassVar[str] = "internal_error"
    error_type: ClassVar[str] = "server_error"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        param: str | None = None,
        retry_after: float | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason  # type: ignore[misc]  # a narrower reason for this instance
        self.param = param
        self.retry_after = retry_after
        self.metadata = dict(metadata or {})


class InvalidArgumentError(TollgateError):
    """The request is malformed or names something that cannot be used."""

    status = StatusCode.INVALID_ARGUMENT
    reason = "invalid_request_error"
    error_type = "invalid_request_error"


class ContextLengthExceededError(InvalidArgumentError):
    """The prompt (plus the requested output) cannot fit the model's context window."""

    reason = "context_length_exceeded"


class FailedPreconditionError(TollgateError):
    """The request is well formed but the system is not in a state to serve it."""

    status = StatusCode.FAILED_PRECONDITION
    reason = "failed_precondition"
    error_type = "invalid_request_error"


class InsufficientQuotaError(FailedPreconditionError):
    """The balance (or the token's cap) cannot pay for the call's upper bound."""

    reason = "insufficient_quota"
    error_type = "insufficient_quota"


class AuthenticationError(TollgateError):
    """No credential, or one that is unknown, deleted, disabled or expired."""

    status = StatusCode.UNAUTHENTICATED
    reason = "invalid_api_key"
    error_type = "invalid_request_error"


class PermissionDeniedError(TollgateError):
    """A valid credential that may not make this call."""

    status = StatusCode.PERMISSION_DENIED
    reason = "permission_denied"
    error_type = "invalid_request_error"


class NotFoundError(TollgateError):
    """The named thing does not exist, or belongs to someone else."""

    status = StatusCode.NOT_FOUND
    reason = "not_found"
    error_type = "invalid_request_error"


class AlreadyExistsError(TollgateError):
    """Something with this name or key exists already."""

    status = StatusCode.ALREADY_EXISTS
    reason = "already_exists"
    error_type = "invalid_request_error"


class ConflictError(TollgateError):
    """The call collides with another one (a duplicate in flight, a name taken)."""

    status = StatusCode.ABORTED
    reason = "conflict"
    error_type = "invalid_request_error"


class RateLimitedError(TollgateError):
    """Too many calls; `retry_after` says when to come back."""

    status = StatusCode.RESOURCE_EXHAUSTED
    reason = "rate_limit_exceeded"
    error_type = "rate_limit_error"


class UnavailableError(TollgateError):
    """A dependency is down or the service is shutting down; retry later."""

    status = StatusCode.UNAVAILABLE
    reason = "service_unavailable"
    error_type = "server_error"


class DatabaseUnavailableError(UnavailableError):
    """The database is unreachable, or a lock or statement took too long; nothing was written."""

    reason = "database_unavailable"


class OverloadedError(UnavailableError):
    """Tollgate itself, or every channel for the model, is at capacity; `retry_after` says when to come back."""

    reason = "overloaded"


class UpstreamError(UnavailableError):
    """An upstream provider failed: refused, overloaded, unreachable, or cut its answer.

    `retryable` says whether another attempt (same channel later, or another one) may succeed;
    `upstream_status` is the provider's HTTP status (0 when no answer arrived). The message is
    Tollgate's own wording: never a provider's body verbatim, which may echo keys or hosts.
    """

    reason = "upstream_error"

    def __init__(self, message: str, *, retryable: bool, upstream_status: int = 0, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retryable = retryable
        self.upstream_status = upstream_status


class UpstreamTimeoutError(TollgateError):
    """The upstream did not answer, or stopped streaming, within its timeout."""

    status = StatusCode.DEADLINE_EXCEEDED
    reason = "upstream_timeout"
    error_type = "server_error"


class InternalError(TollgateError):
    """A bug or a broken invariant; the client sees a generic message."""
