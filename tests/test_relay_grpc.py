"""The relay over gRPC: the same behaviour as REST, with status codes and google.rpc details."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from tollgate.v1 import chat_pb2, relay_pb2, relay_pb2_grpc

from tests.support.grpc_clients import error_details
from tests.support.relay_env import RelayEnv, relay_env


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[RelayEnv]:
    async with relay_env(tmp_path) as started:
        yield started


def _params(model: str, text: str, **fields: object) -> chat_pb2.ChatCompletionParams:
    message = chat_pb2.ChatMessage(role="user", content=text)
    return chat_pb2.ChatCompletionParams(model=model, messages=[message], **fields)  # type: ignore[arg-type]


async def test_unary_and_stream(env: RelayEnv) -> None:
    stub = relay_pb2_grpc.RelayServiceStub(env.channel)
    answer = await stub.CreateChatCompletion(
        relay_pb2.CreateChatCompletionRequest(params=_params("deepseek-chat", "over grpc")), metadata=env.metadata()
    )
    assert answer.choices[0].message.content.startswith("Echo: over grpc")
    assert answer.usage.completion_tokens == 8
    request = relay_pb2.StreamChatCompletionRequest(
        params=_params("claude-haiku-4-5", "stream grpc", stream_options=chat_pb2.StreamOptions(include_usage=True))
    )
    chunks = [chunk async for chunk in stub.StreamChatCompletion(request, metadata=env.metadata())]
    text = "".join(chunk.choices[0].delta.content for chunk in chunks if chunk.choices)
    assert text.startswith("Echo: stream grpc")
    assert chunks[-1].usage.completion_tokens == 8
    assert all(chunk.model == "claude-haiku-4-5" for chunk in chunks)


@pytest.mark.parametrize(
    ("model", "text", "code", "reason"),
    [
        ("no-such-model", "hi", grpc.StatusCode.NOT_FOUND, "model_not_found"),
        ("deepseek-chat", "x" * 400_000, grpc.StatusCode.INVALID_ARGUMENT, "context_length_exceeded"),
        ("deepseek-chat", "[[scenario: status=503]]", grpc.StatusCode.UNAVAILABLE, "upstream_error"),
        ("deepseek-chat", "[[scenario: status=400]]", grpc.StatusCode.INVALID_ARGUMENT, "invalid_request_error"),
    ],
)
async def test_errors_carry_error_info(
    env: RelayEnv, model: str, text: str, code: grpc.StatusCode, reason: str
) -> None:
    stub = relay_pb2_grpc.RelayServiceStub(env.channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateChatCompletion(
            relay_pb2.CreateChatCompletionRequest(params=_params(model, text)), metadata=env.metadata()
        )
    assert caught.value.code() == code
    info, _ = error_details(caught.value)
    assert info.reason == reason


async def test_upstream_rate_limit_carries_retry_info(env: RelayEnv) -> None:
    stub = relay_pb2_grpc.RelayServiceStub(env.channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateChatCompletion(
            relay_pb2.CreateChatCompletionRequest(
                params=_params("deepseek-chat", "[[scenario: status=429,retry_after=1]]")
            ),
            metadata=env.metadata(),
        )
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    _, retry = error_details(caught.value)
    assert retry is not None and retry.retry_delay.seconds == 1


async def test_cut_stream_ends_with_an_error_status(env: RelayEnv) -> None:
    stub = relay_pb2_grpc.RelayServiceStub(env.channel)
    request = relay_pb2.StreamChatCompletionRequest(params=_params("deepseek-chat", "[[scenario: cut_after=2]]"))
    received = 0
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in stub.StreamChatCompletion(request, metadata=env.metadata()):
            received += 1
    assert received >= 1
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
