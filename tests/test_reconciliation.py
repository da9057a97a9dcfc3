"""Reconciliation: every charge against the fake upstream's own bill for the same request id.

Exact when the upstream reported usage, within 3 % when Tollgate had to estimate (its estimate is
calibrated by the model's earlier reported calls), never above the hold; ledger invariants after each.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest
from tollgate.v1 import chat_pb2, relay_pb2, relay_pb2_grpc

from tests.support.ledger_checks import assert_ledger_invariants
from tests.support.reconcile import (
    assert_reconciled,
    calibrate,
    hold_of,
    leave,
    messages,
    newest_row,
    reconciling_env,
    stream,
    upstream_bill,
)
from tests.support.relay_env import RelayEnv

MODELS = ["deepseek-chat", "claude-haiku-4-5"]
NO_DRAINS = {"TOLLGATE_RELAY_DISCONNECT_DRAIN_SECONDS": "0"}


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[RelayEnv]:
    async with reconciling_env(tmp_path) as started:
        yield started
        assert_ledger_invariants(tmp_path / "tollgate.db")


async def _unary(env: RelayEnv, model: str, scenario: str) -> None:
    async with env.client() as client:
        await client.chat.completions.create(model=model, messages=messages(scenario))


async def _leave_before_the_answer(env: RelayEnv, model: str) -> None:
    """A gRPC client cancels while the upstream still thinks (a REST client's leaving is seen at the first write)."""
    params = chat_pb2.ChatCompletionParams(model=model)
    params.messages.add(role="user", content=messages("first_byte_ms=1500")[0]["content"])
    stub = relay_pb2_grpc.RelayServiceStub(env.channel)
    call = stub.StreamChatCompletion(relay_pb2.StreamChatCompletionRequest(params=params), metadata=env.metadata())
    await asyncio.sleep(0.3)
    call.cancel()


async def _check(env: RelayEnv, tmp_path: Path, count: int, *, estimated: bool) -> dict[str, Any]:
    row = await newest_row(env, count)
    assert row["estimated"] is estimated, row
    billed = await upstream_bill(env, row["request_id"])
    assert_reconciled(row, billed, hold_of(tmp_path / "tollgate.db", row["request_id"]))
    assert_ledger_invariants(tmp_path / "tollgate.db")
    return row


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("shape", ["unary", "stream", "stream_with_usage"])
async def test_reported_usage_is_charged_exactly(env: RelayEnv, tmp_path: Path, model: str, shape: str) -> None:
    if shape == "unary":
        await _unary(env, model, "reasoning=0")
    else:
        await stream(env, model, "reasoning=0", include_usage=shape == "stream_with_usage")
    await _check(env, tmp_path, 1, estimated=False)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize(
    "scenario",
    ["no_usage", "hostile_usage=negative", "hostile_usage=absurd", "hostile_usage=float", "hostile_usage=string"],
)
@pytest.mark.parametrize("shape", ["unary", "stream"])
async def test_missing_or_hostile_usage_is_estimated_within_3_percent(
    env: RelayEnv, tmp_path: Path, model: str, scenario: str, shape: str
) -> None:
    await calibrate(env, model)
    if shape == "unary":
        await _unary(env, model, scenario)
    else:
        await stream(env, model, scenario, include_usage=True)
    await _check(env, tmp_path, 2, estimated=True)


@pytest.mark.parametrize("model", MODELS)
async def test_cut_stream_is_estimated_within_3_percent(env: RelayEnv, tmp_path: Path, model: str) -> None:
    await calibrate(env, model)
    with pytest.raises(openai.APIError):
        await stream(env, model, "cut_after=12")
    row = await _check(env, tmp_path, 2, estimated=True)
    assert row["status"] == "upstream_error"


@pytest.mark.parametrize("model", MODELS)
async def test_drained_disconnect_is_charged_the_upstream_usage_exactly(
    env: RelayEnv, tmp_path: Path, model: str
) -> None:
    await leave(env, model, "chunk_interval_ms=20", after_lines=5)
    row = await _check(env, tmp_path, 1, estimated=False)
    assert row["status"] == "cancelled"
    assert row["output_tokens"] == 40  # the whole answer the upstream generated, not the 5 chunks relayed


@pytest.mark.parametrize("model", MODELS)
async def test_undrained_disconnect_is_estimated_within_3_percent(tmp_path: Path, model: str) -> None:
    async with reconciling_env(tmp_path, NO_DRAINS) as env:
        await calibrate(env, model)
        await leave(env, model, "chunk_interval_ms=20", after_lines=8)
        await env.upstream.wait_idle()
        row = await _check(env, tmp_path, 2, estimated=True)
        assert row["status"] == "cancelled" and 0 < row["output_tokens"] < 40


@pytest.mark.parametrize("model", MODELS)
async def test_client_gone_before_the_answer_pays_nothing(env: RelayEnv, tmp_path: Path, model: str) -> None:
    await _leave_before_the_answer(env, model)
    await env.upstream.wait_idle()
    row = await _check(env, tmp_path, 1, estimated=True)
    assert row["cost_micros"] == 0 and row["status"] == "cancelled"
