"""Reconciling Tollgate's charges with the fake upstream's own bill, call by call."""

from __future__ import annotations

import asyncio
import contextlib
import math
import sqlite3
from collections.abc import AsyncIterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from tests.support.fake_upstream import Prices
from tests.support.relay_env import RelayEnv, relay_env

PRICES = {
    "deepseek-chat": Prices(input="0.27", cached_input="0.07", cache_write="0.27", output="1.10"),
    "claude-haiku-4-5": Prices(input="1", cached_input="0.10", cache_write="1.25", output="5"),
}
ESTIMATE_TOLERANCE = Decimal("0.03")
BODY = "alpha bravo delta gamma sigma omega kappa theta " * 40
"""A prompt of even words: every call that shares it has the same shape, whatever its scenario marker."""


def messages(scenario: str) -> Any:
    return [{"role": "user", "content": f"{BODY}[[scenario: chunks=40, {scenario}]]"}]


async def logs(env: RelayEnv) -> list[dict[str, Any]]:
    reply = await env.running.http.get("/api/v1/logs?page_size=100", headers=env.session)
    assert reply.status_code == 200, reply.text
    return list(reply.json()["logs"])


async def newest_row(env: RelayEnv, count: int, timeout: float = 10.0) -> dict[str, Any]:
    """The newest usage row, once there are `count` rows (a drained stream settles after its client left)."""
    rows: list[dict[str, Any]] = []
    for _ in range(int(timeout / 0.05)):
        rows = await logs(env)
        if len(rows) >= count:
            return rows[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"{len(rows)} usage rows, expected {count}")


async def upstream_bill(env: RelayEnv, request_id: str) -> Decimal:
    """What the fake upstream billed for one request id, in micro-USD, read over its test endpoint."""
    async with httpx.AsyncClient(base_url=env.upstream.base_url) as http:
        entries = (await http.get(f"/_fake/bill/{request_id}")).json()["entries"]
    total = Decimal(0)
    for entry in entries:
        prices, tokens = PRICES[entry["model"]], entry["tokens"]
        total += (
            Decimal(prices.input) * tokens["input"]
            + Decimal(prices.cached_input) * tokens["cache_read"]
            + Decimal(prices.cache_write) * tokens["cache_write"]
            + Decimal(prices.output) * tokens["output"]
        )
    return total


@contextlib.asynccontextmanager
async def reconciling_env(tmp_path: Path, environ: Mapping[str, str] | None = None) -> AsyncIterator[RelayEnv]:
    """A relay environment whose database keeps a copy of each hold a settlement deletes (for `hold_of`).

    A settled hold is gone from `holds`; the copy is test scaffolding in the test's own database, made
    by a trigger, so a charge can still be compared with the hold that paid for it.
    """
    async with relay_env(tmp_path, environ=environ) as env:
        _keep_settled_holds(tmp_path / "tollgate.db")
        yield env


def _keep_settled_holds(database: Path) -> None:
    db = sqlite3.connect(database)
    try:
        db.executescript(
            "CREATE TABLE test_settled_holds (request_id TEXT PRIMARY KEY, amount_micros INTEGER NOT NULL);"
            " CREATE TRIGGER test_keep_settled_holds AFTER DELETE ON holds BEGIN"
            " INSERT INTO test_settled_holds VALUES (old.request_id, old.amount_micros); END;"
        )
    finally:
        db.close()


def hold_of(database: Path, request_id: str) -> int:
    """The hold a call settled in a `reconciling_env` had."""
    db = sqlite3.connect(database)
    try:
        query = "SELECT amount_micros FROM test_settled_holds WHERE request_id = ?"
        return int(db.execute(query, (request_id,)).fetchone()[0])
    finally:
        db.close()


def assert_reconciled(row: dict[str, Any], billed: Decimal, hold: int) -> None:
    """Exact when the upstream's usage was used; within 3 % when estimated; never above the hold."""
    charge = row["cost_micros"]
    assert charge <= hold
    if not row["estimated"]:
        assert charge == math.ceil(billed), (row, billed)
    else:
        assert abs(Decimal(charge) - billed) <= ESTIMATE_TOLERANCE * billed, (row, billed)


async def stream(env: RelayEnv, model: str, scenario: str, *, include_usage: bool = False) -> None:
    options: Any = {"stream_options": {"include_usage": True}} if include_usage else {}
    async with env.client() as client:
        stream = await client.chat.completions.create(model=model, messages=messages(scenario), stream=True, **options)
        async for _ in stream:
            pass


async def leave(env: RelayEnv, model: str, scenario: str, after_lines: int) -> None:
    """Streams over raw HTTP and walks away after `after_lines` data lines."""
    body = {"model": model, "stream": True, "messages": messages(scenario)}
    headers = {"authorization": f"Bearer {env.key}"}
    async with httpx.AsyncClient(base_url=env.running.base_url) as http:
        async with http.stream("POST", "/v1/chat/completions", json=body, headers=headers) as reply:
            seen = 0
            async for line in reply.aiter_lines():
                seen += line.startswith("data:")
                if seen == after_lines:
                    break


async def calibrate(env: RelayEnv, model: str) -> None:
    """One ordinary call with reported usage, from which Tollgate learns the model's token ratios."""
    await stream(env, model, "reasoning=0", include_usage=True)
