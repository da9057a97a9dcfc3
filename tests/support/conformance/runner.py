"""Runs one conformance case through one driver against a RelayEnv, and reads back what it cost."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

from tollgate.v1 import chat_pb2, relay_pb2, relay_pb2_grpc

from tests.support.conformance.cases import Case, Row, Setup
from tests.support.conformance.outcome import Call, Outcome
from tests.support.relay_env import RelayEnv

UNKNOWN_KEY = "sk-" + "0" * 48
STARTING_BALANCE_MICROS = 100_000_000  # relay_env credits the user $100


class Driver(Protocol):
    """One door into Tollgate."""

    door: str

    async def call(self, call: Call) -> Outcome: ...


@dataclasses.dataclass(frozen=True)
class Result:
    """What the last call saw, and the money and log rows of the case's token after all calls."""

    outcome: Outcome
    spent_micros: int
    """What the funded account ("user") paid: its starting credit minus its balance."""
    held_micros: int
    rows: tuple[Row, ...]
    row_costs: tuple[int, ...]


async def run_case(env: RelayEnv, driver: Driver, case: Case, database: Path) -> Result:
    token_id, key = await _credential(env, case)
    call = Call(case.op, key, model=case.model, text=case.text, cancel_after=case.cancel_after)
    outcome = Outcome()
    for number in range(case.calls):
        if number and case.setup is Setup.DELETED_AFTER_FIRST_CALL:
            deleted = await env.running.http.delete(f"/api/v1/tokens/{token_id}", headers=env.session)
            assert deleted.status_code == 200, deleted.text
        async with _slot_held(env, key, case.setup is Setup.SLOT_HELD):
            outcome = await driver.call(call)
    # A cancelled stream settles after its caller has gone, once its upstream is drained (the upstream's own
    # usage is billed): wait for every row and released hold.
    for _ in range(400):
        spent, held, rows, costs = _read(database, token_id)
        if len(rows) >= len(case.rows) and held == 0:
            break
        await asyncio.sleep(0.05)
    return Result(outcome, spent, held, rows, costs)


@contextlib.asynccontextmanager
async def _slot_held(env: RelayEnv, key: str, held: bool) -> AsyncIterator[None]:
    """While held, a slow stream of the same key (over gRPC, whatever the driver) is running."""
    if not held:
        yield
        return
    stub = relay_pb2_grpc.RelayServiceStub(env.channel)
    params = chat_pb2.ChatCompletionParams(
        model="deepseek-chat",
        messages=[chat_pb2.ChatMessage(role="user", content="[[scenario: chunks=150,chunk_interval_ms=20]]")],
    )
    holder = stub.StreamChatCompletion(
        relay_pb2.StreamChatCompletionRequest(params=params), metadata=(("authorization", f"Bearer {key}"),)
    )
    await holder.read()  # the first chunk: the slot is taken
    try:
        yield
    finally:
        holder.cancel()


async def _credential(env: RelayEnv, case: Case) -> tuple[str, str]:
    if case.setup is Setup.UNKNOWN_KEY:
        return "", UNKNOWN_KEY
    session = env.session
    if case.setup is Setup.EMPTY_ACCOUNT:
        await env.running.create_account("empty")
        session = await env.running.login("empty")
    return await env.running.create_token(session, name=case.name, **case.token)


def _read(database: Path, token_id: str) -> tuple[int, int, tuple[Row, ...], tuple[int, ...]]:
    """(the user's spend from its balance, its open holds, the token's usage rows, their costs)."""
    db = sqlite3.connect(database)
    try:
        balance, held = db.execute("SELECT balance_micros, held_micros FROM accounts WHERE name = 'user'").fetchone()
        found = db.execute(
            "SELECT status, stream, estimated, cost_micros FROM usage_logs WHERE token_id = ? OR ? = ''"
            " ORDER BY created_at",
            (token_id, token_id),
        ).fetchall()
    finally:
        db.close()
    rows = tuple(Row(status, bool(stream), bool(estimated)) for status, stream, estimated, _ in found)
    return STARTING_BALANCE_MICROS - balance, held, rows, tuple(cost for *_, cost in found)
