"""Anthropic HTTP error answers as domain errors (PROVIDERS.md §3.7), one test per row."""

from __future__ import annotations

from typing import Any

import pytest

from server.errors import ContextLengthExceededError, InvalidArgumentError, UpstreamError
from server.providers.anthropic_errors import error_from_anthropic
from server.providers.redact import MAX_MESSAGE


def _body(error_type: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message}, "request_id": "req_1"}


def test_a_bad_request_keeps_the_upstream_words() -> None:
    error = error_from_anthropic(400, _body("invalid_request_error", "max_tokens: must be positive"), None)
    assert type(error) is InvalidArgumentError
    assert error.message == "max_tokens: must be positive"


@pytest.mark.parametrize(
    "message",
    [
        "prompt is too long: 208310 tokens > 200000 maximum",
        "input length and `max_tokens` exceed context limit: 198000 + 8192 > 200000",
    ],
)
def test_a_prompt_too_long_is_a_context_length_error(message: str) -> None:
    error = error_from_anthropic(400, _body("invalid_request_error", message), None)
    assert isinstance(error, ContextLengthExceededError)
    assert (error.message, error.param, error.reason) == (message, "messages", "context_length_exceeded")


@pytest.mark.parametrize(
    "secret",
    ["sk-ant-api03-AbCdEf_123-456", "x-api-key: abc123", "Bearer abc.def", "a" * 40],
)
def test_key_like_text_is_redacted_from_a_bad_request(secret: str) -> None:
    error = error_from_anthropic(400, _body("invalid_request_error", f"header {secret} is wrong"), None)
    assert error.message == "header [redacted] is wrong"


def test_a_long_message_is_capped() -> None:
    error = error_from_anthropic(400, _body("invalid_request_error", "word " * 200), None)
    assert len(error.message) == MAX_MESSAGE and error.message.endswith("…")


@pytest.mark.parametrize("body", [None, {}, {"error": "nope"}, {"error": {"message": 5}}])
def test_a_bad_request_without_a_message_gets_a_generic_one(body: dict[str, Any] | None) -> None:
    error = error_from_anthropic(400, body, None)
    assert type(error) is InvalidArgumentError and error.message


def test_a_too_large_request_is_the_clients_fault() -> None:
    error = error_from_anthropic(413, _body("request_too_large", "Request exceeds the maximum size"), None)
    assert type(error) is InvalidArgumentError and error.reason == "request_too_large"


@pytest.mark.parametrize(
    ("status", "error_type"),
    [(401, "authentication_error"), (403, "permission_error"), (404, "not_found_error")],
)
def test_the_channels_own_trouble_is_final_and_says_nothing_of_the_key(status: int, error_type: str) -> None:
    error = error_from_anthropic(status, _body(error_type, "invalid x-api-key sk-ant-api03-secret"), None)
    assert isinstance(error, UpstreamError)
    assert (error.retryable, error.upstream_status) == (False, status)
    assert "sk-" not in error.message and "x-api-key" not in error.message


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "api_error"),
        (504, "timeout_error"),
        (529, "overloaded_error"),
    ],
)
def test_transient_failures_are_retryable_and_keep_retry_after(status: int, error_type: str) -> None:
    error = error_from_anthropic(status, _body(error_type, "Overloaded"), 2.5)
    assert isinstance(error, UpstreamError)
    assert (error.retryable, error.upstream_status, error.retry_after) == (True, status, 2.5)


@pytest.mark.parametrize("status", [402, 408, 409, 422, 501])
def test_other_statuses_are_final_upstream_errors(status: int) -> None:
    error = error_from_anthropic(status, _body("billing_error", "pay up"), None)
    assert isinstance(error, UpstreamError)
    assert (error.retryable, error.upstream_status) == (False, status)
    assert "pay up" not in error.message
