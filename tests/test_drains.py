"""Drains: a stream whose client left is read on for its final usage, bounded in time and in number."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

from tests.support.ledger_checks import assert_ledger_invariants
from tests.support.reconcile import (
    assert_reconciled,
    calibrate,
    hold_of,
    leave,
    newest_row,
    reconciling_env,
    upstream_bill,
)
from tests.support.relay_env import RelayEnv, relay_env

MODEL = "deepseek-chat"


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never held")


async def _reconciled(env: RelayEnv, tmp_path: Path, count: int) -> dict[str, object]:
    row = await newest_row(env, count)
    billed = await upstream_bill(env, str(row["request_id"]))
    assert_reconciled(row, billed, hold_of(tmp_path / "tollgate.db", str(row["request_id"])))
    return row


async def test_a_drain_past_its_time_is_cut_and_estimated(tmp_path: Path) -> None:
    async with reconciling_env(tmp_path, {"TOLLGATE_RELAY_DISCONNECT_DRAIN_SECONDS": "0.4"}) as env:
        drains = env.running.tollgate.domain.relay.drains
        await calibrate(env, MODEL)
        await leave(env, MODEL, "chunks=200, chunk_interval_ms=20", after_lines=3)
        row = await _reconciled(env, tmp_path, 2)
        assert row["estimated"] is True and row["status"] == "cancelled"
        assert 3 < int(str(row["output_tokens"])) < 200  # read on past the client, not to the end
        assert (drains.started, drains.timed_out, drains.running) == (1, 1, 0)
        await env.upstream.wait_idle()  # the cut reached the upstream
        assert env.upstream.client_disconnects == 1
        assert_ledger_invariants(tmp_path / "tollgate.db")


async def test_past_the_drain_limit_a_left_stream_is_cut_at_once(tmp_path: Path) -> None:
    async with reconciling_env(tmp_path, {"TOLLGATE_RELAY_MAX_DISCONNECT_DRAINS": "1"}) as env:
        drains = env.running.tollgate.domain.relay.drains
        await calibrate(env, MODEL)
        await leave(env, MODEL, "chunks=60, chunk_interval_ms=30", after_lines=3)
        await _until(lambda: drains.running == 1)
        await leave(env, MODEL, "chunks=60, chunk_interval_ms=30, reasoning=0", after_lines=3)
        refused = await _reconciled(env, tmp_path, 2)
        assert refused["estimated"] is True and int(str(refused["output_tokens"])) < 60
        drained = await _reconciled(env, tmp_path, 3)
        assert drained["estimated"] is False and drained["output_tokens"] == 60
        assert (drains.started, drains.refused) == (1, 1)
        assert_ledger_invariants(tmp_path / "tollgate.db")


async def test_shutdown_cuts_running_drains_and_settles_them_once(tmp_path: Path) -> None:
    async with relay_env(tmp_path) as env:
        await leave(env, MODEL, "chunks=500, chunk_interval_ms=20", after_lines=3)
        await _until(lambda: env.running.tollgate.domain.relay.drains.running == 1)
    db = sqlite3.connect(tmp_path / "tollgate.db")
    try:
        rows = db.execute("SELECT status, estimated, output_tokens, cost_micros FROM usage_logs").fetchall()
    finally:
        db.close()
    ((status, estimated, output, cost),) = rows
    assert (status, estimated) == ("cancelled", 1) and 3 < output < 500 and cost > 0
    assert_ledger_invariants(tmp_path / "tollgate.db")
