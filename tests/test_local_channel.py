"""The gateway's in-process channel answers as the gRPC server does: same replies, statuses, details, deadlines."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from tollgate.v1 import chat_pb2, relay_pb2, relay_pb2_grpc

from gateway.errors import status_from_rpc_error
from server.access import ANONYMOUS
from server.interceptors import current_principal, current_request_id
from server.local_channel import LocalChannel
from tests.support.relay_env import RelayEnv, relay_env

Outcome = tuple[str, Any]


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[RelayEnv]:
    async with relay_env(tmp_path) as started:
        yield started


def _local(env: RelayEnv) -> LocalChannel:
    channel = env.running.tollgate.channel
    assert isinstance(channel, LocalChannel)
    return channel


def _chat(text: str, model: str = "deepseek-chat", *, stream: bool = True) -> chat_pb2.ChatCompletionParams:
    usage = chat_pb2.StreamOptions(include_usage=True) if stream else None
    return chat_pb2.ChatCompletionParams(
        model=model, messages=[chat_pb2.ChatMessage(role="user", content=text)], stream_options=usage
    )


def _without_request_id(status: status_pb2.Status) -> status_pb2.Status:
    """The status with the request id (new for every call) left out of its ErrorInfo."""
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            del info.metadata["request_id"]
            detail.Pack(info)
    return status


async def _outcome(call: Callable[[grpc.aio.Channel], Awaitable[Any]], channel: grpc.aio.Channel) -> Outcome:
    """("ok", what the call gave) or ("error", code, details, the google.rpc.Status it carried)."""
    try:
        return "ok", await call(channel)
    except grpc.aio.AioRpcError as exc:
        return "error", (exc.code(), exc.details(), _without_request_id(status_from_rpc_error(exc)))


async def _both(env: RelayEnv, call: Callable[[grpc.aio.Channel], Awaitable[Any]]) -> tuple[Outcome, Outcome]:
    return await _outcome(call, env.channel), await _outcome(call, _local(env))


def _unary(text: str, model: str = "deepseek-chat", key: str | None = None) -> Callable[..., Awaitable[Any]]:
    async def call(channel: grpc.aio.Channel) -> Any:
        metadata = (("authorization", f"Bearer {key}"),) if key is not None else ()
        answer = await relay_pb2_grpc.RelayServiceStub(channel).CreateChatCompletion(
            relay_pb2.CreateChatCompletionRequest(params=_chat(text, model, stream=False)), metadata=metadata
        )
        return answer.choices[0].message.content, answer.usage

    return call


@pytest.mark.parametrize(
    ("text", "model", "key"),
    [
        ("a plain answer", "deepseek-chat", "KEY"),
        ("no key at all", "deepseek-chat", None),
        ("a wrong key", "deepseek-chat", "sk-not-a-key"),
        ("no such model", "no-such-model", "KEY"),
        ("[[scenario: status=429,retry_after=1]]", "deepseek-chat", "KEY"),
        ("[[scenario: status=400]]", "deepseek-chat", "KEY"),
    ],
)
async def test_unary_replies_and_errors_are_the_grpc_servers(env: RelayEnv, text: str, model: str, key: str) -> None:
    over_grpc, local = await _both(env, _unary(text, model, env.key if key == "KEY" else key))
    assert local == over_grpc
    assert local[0] == ("ok" if key == "KEY" and model != "no-such-model" and "status" not in text else "error")


@pytest.mark.parametrize("text", ["stream it", "[[scenario: cut_after=2]]"])
async def test_streams_and_their_errors_are_the_grpc_servers(env: RelayEnv, text: str) -> None:
    async def call(channel: grpc.aio.Channel) -> Any:
        request = relay_pb2.StreamChatCompletionRequest(params=_chat(text))
        stream = relay_pb2_grpc.RelayServiceStub(channel).StreamChatCompletion(request, metadata=env.metadata())
        seen: list[tuple[Any, ...]] = []
        try:
            async for chunk in stream:
                seen.append(("".join(c.delta.content for c in chunk.choices), chunk.usage.completion_tokens))
        except grpc.aio.AioRpcError as exc:
            seen.append(("error", exc.code(), exc.details()))
        return seen, await stream.code()

    over_grpc, local = await _both(env, call)
    assert local == over_grpc
    assert local[1][1] == (grpc.StatusCode.OK if text == "stream it" else grpc.StatusCode.UNAVAILABLE)


async def test_an_unknown_method_is_unimplemented(env: RelayEnv) -> None:
    async def call(channel: grpc.aio.Channel) -> Any:
        method: Any = channel.unary_unary("/tollgate.v1.RelayService/NoSuchMethod")
        return await method(b"", metadata=env.metadata())

    over_grpc, local = await _both(env, call)
    assert local[0] == over_grpc[0] == "error"
    assert local[1][0] == over_grpc[1][0] == grpc.StatusCode.UNIMPLEMENTED


def _open_holds(database: Path | str) -> int:
    with sqlite3.connect(database) as db:
        return int(db.execute("SELECT COUNT(*) FROM holds WHERE settled_at IS NULL").fetchone()[0])


async def _settled(env: RelayEnv) -> None:
    for _ in range(100):
        if _open_holds(env.database) == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("a hold stayed open")


async def test_a_deadline_cancels_the_handler_and_the_call_is_settled(env: RelayEnv) -> None:
    async def call(channel: grpc.aio.Channel) -> Any:
        request = relay_pb2.StreamChatCompletionRequest(params=_chat("[[scenario: first_byte_ms=3000]]"))
        stub = relay_pb2_grpc.RelayServiceStub(channel)
        return [chunk async for chunk in stub.StreamChatCompletion(request, metadata=env.metadata(), timeout=0.3)]

    over_grpc, local = await _both(env, call)
    assert local == over_grpc
    assert local[1][0] == grpc.StatusCode.DEADLINE_EXCEEDED
    await _settled(env)


async def test_cancel_ends_the_handler_and_the_call_is_settled(env: RelayEnv) -> None:
    request = relay_pb2.StreamChatCompletionRequest(params=_chat("[[scenario: chunks=40, chunk_interval_ms=50]]"))
    stream = relay_pb2_grpc.RelayServiceStub(_local(env)).StreamChatCompletion(request, metadata=env.metadata())
    await stream.read()
    assert stream.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stream.read()
    assert stream.cancelled() and await stream.code() == grpc.StatusCode.CANCELLED
    await _settled(env)


async def test_the_servers_context_stays_in_the_servers_task(env: RelayEnv) -> None:
    assert (await _outcome(_unary("hello", key=env.key), _local(env)))[0] == "ok"
    assert current_request_id() == ""  # the edge set both for the handler's task only
    assert current_principal() is ANONYMOUS


async def test_closing_cuts_running_streams_and_refuses_new_calls(env: RelayEnv) -> None:
    request = relay_pb2.StreamChatCompletionRequest(params=_chat("[[scenario: chunks=40, chunk_interval_ms=50]]"))
    stub = relay_pb2_grpc.RelayServiceStub(_local(env))
    stream = stub.StreamChatCompletion(request, metadata=env.metadata())
    await stream.read()
    await _local(env).close(grace=0.1)
    with pytest.raises(grpc.aio.AioRpcError) as cut:
        while True:
            await stream.read()
    assert cut.value.code() == grpc.StatusCode.CANCELLED
    refused = await _outcome(_unary("after close", key=env.key), _local(env))
    assert refused[0] == "error" and refused[1][0] == grpc.StatusCode.UNAVAILABLE
    await _settled(env)
