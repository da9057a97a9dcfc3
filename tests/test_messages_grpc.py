"""The Messages RPCs of RelayService over a real gRPC channel: whole, streamed, counted, refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format, struct_pb2
from tollgate.v1 import messages_pb2, relay_pb2_grpc

from tests.support.relay_env import RelayEnv, relay_env


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[RelayEnv]:
    async with relay_env(tmp_path) as started:
        yield started


def _body(**fields: Any) -> struct_pb2.Struct:
    body = struct_pb2.Struct()
    body.update({"model": "claude-haiku-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]})
    body.update(fields)
    return body


async def test_create_stream_and_count(env: RelayEnv) -> None:
    stub = relay_pb2_grpc.RelayServiceStub(env.channel)
    reply = await stub.CreateMessage(messages_pb2.CreateMessageRequest(body=_body()), metadata=env.metadata())
    message = json_format.MessageToDict(reply.message)
    assert message["type"] == "message" and message["model"] == "claude-haiku-4-5"
    assert message["usage"]["output_tokens"] == env.upstream.bill[-1].tokens.output
    request = messages_pb2.StreamMessageRequest(body=_body(), anthropic_beta="b1")
    events = [event async for event in stub.StreamMessage(request, metadata=env.metadata())]
    names = [event.event for event in events]
    assert names[0] == "message_start" and names[-1] == "message_stop" and "content_block_delta" in names
    assert env.upstream.requests_to("/v1/messages")[-1].headers["anthropic-beta"] == "b1"
    counted = await stub.CountMessageTokens(
        messages_pb2.CountMessageTokensRequest(body=_body()), metadata=env.metadata()
    )
    assert counted.input_tokens > 0


async def test_refusals_are_statuses(env: RelayEnv) -> None:
    stub = relay_pb2_grpc.RelayServiceStub(env.channel)
    with pytest.raises(grpc.aio.AioRpcError) as anonymous:
        await stub.CreateMessage(messages_pb2.CreateMessageRequest(body=_body()))
    assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as invalid:
        await stub.CreateMessage(
            messages_pb2.CreateMessageRequest(body=_body(max_tokens=None)), metadata=env.metadata()
        )
    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert env.upstream.requests_to("/v1/messages") == []
