"""`GET /api/v1/logs:export`: the same rows and filters as `GET /api/v1/logs`, as CSV, metadata only."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from gateway.logs_csv import COLUMNS, LogsExport, safe_cell
from tests.support.relay_env import RelayEnv, relay_env

CANARY = "CANARY-csv-prompt-7f3e"


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[RelayEnv]:
    async with relay_env(tmp_path) as started:
        yield started


def _rows(text: str) -> list[dict[str, str]]:
    reader = csv.DictReader(io.StringIO(text))
    assert tuple(reader.fieldnames or ()) == COLUMNS
    return list(reader)


async def _logs(env: RelayEnv, query: str = "") -> list[dict[str, Any]]:
    reply = await env.running.http.get(f"/api/v1/logs{query}", headers=env.session)
    return list(reply.json()["logs"])


async def _call(env: RelayEnv, model: str, key: str | None = None) -> None:
    base_url = f"{env.running.base_url}/v1"
    async with openai.AsyncOpenAI(api_key=key or env.key, base_url=base_url, max_retries=0) as client:
        await client.chat.completions.create(model=model, messages=[{"role": "user", "content": CANARY}])


def test_formula_starts_are_quoted_and_plain_text_is_kept() -> None:
    assert [safe_cell(text) for text in ("=1+2", "+1", "-1", "@SUM(A1)", "\tx", "prod", "")] == [
        "'=1+2",
        "'+1",
        "'-1",
        "'@SUM(A1)",
        "'\tx",
        "prod",
        "",
    ]


async def test_export_matches_the_logs_api_row_for_row(env: RelayEnv) -> None:
    _, formula_key = await env.running.create_token(env.session, name='=HYPERLINK("http://evil","x")')
    await _call(env, "deepseek-chat")
    await _call(env, "claude-haiku-4-5", formula_key)
    reply = await env.running.http.get("/api/v1/logs:export", headers=env.session)
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "text/csv; charset=utf-8"
    assert "attachment" in reply.headers["content-disposition"]
    rows = _rows(reply.text)
    logs = await _logs(env)
    assert [row["request_id"] for row in rows] == [log["request_id"] for log in logs]
    for row, log in zip(rows, logs, strict=True):
        assert int(row["cost_micros"]) == log["cost_micros"] and row["cost_usd"] == log["cost_usd"]
        assert (int(row["input_tokens"]), int(row["output_tokens"])) == (log["input_tokens"], log["output_tokens"])
        assert (row["served_model"], row["status"]) == (log["served_model"], "ok")
    assert rows[0]["token_name"] == """'=HYPERLINK("http://evil","x")"""
    assert rows[1]["token_name"] == "app"
    assert CANARY not in reply.text


async def test_export_takes_the_filters_of_the_logs_api(env: RelayEnv) -> None:
    for model in ("deepseek-chat", "claude-haiku-4-5", "deepseek-chat"):
        await _call(env, model)
    reply = await env.running.http.get("/api/v1/logs:export?model=claude-haiku-4-5", headers=env.session)
    assert [row["requested_model"] for row in _rows(reply.text)] == ["claude-haiku-4-5"]
    newest = (await _logs(env))[0]["create_time"]
    later = await env.running.http.get(
        "/api/v1/logs:export", params={"start_time": "2999-01-01T00:00:00Z"}, headers=env.session
    )
    assert _rows(later.text) == [] and newest < "2999"


async def test_export_needs_a_session_and_valid_filters(env: RelayEnv) -> None:
    anonymous = await env.running.http.get("/api/v1/logs:export")
    assert anonymous.status_code == 401 and "message" in anonymous.json()
    with_key = await env.running.http.get("/api/v1/logs:export", headers={"authorization": f"Bearer {env.key}"})
    assert with_key.status_code == 403
    bad = await env.running.http.get("/api/v1/logs:export?start_time=yesterday", headers=env.session)
    assert bad.status_code == 400


async def test_the_operator_reads_an_account_s_logs_and_totals_and_an_account_only_its_own(env: RelayEnv) -> None:
    await _call(env, "deepseek-chat")
    account_id = (await env.running.http.get("/api/v1/account", headers=env.session)).json()["id"]
    operator, http = env.running.operator(), env.running.http
    own = await _logs(env)
    listed = await http.get("/api/v1/logs", params={"account_id": account_id}, headers=operator)
    assert listed.status_code == 200 and listed.json()["logs"] == own
    exported = await http.get("/api/v1/logs:export", params={"account_id": account_id}, headers=operator)
    assert [row["request_id"] for row in _rows(exported.text)] == [log["request_id"] for log in own]
    assert (await http.get("/api/v1/logs", headers=operator)).status_code == 400  # whose?
    unknown = await http.get("/api/v1/logs", params={"account_id": "acc_nope"}, headers=operator)
    assert unknown.status_code == 404
    other_id = await env.running.create_account("mallory")
    other = await env.running.login("mallory")
    assert (await http.get("/api/v1/logs", params={"account_id": account_id}, headers=other)).status_code == 404
    assert (await http.get("/api/v1/logs", params={"account_id": other_id}, headers=other)).json()["logs"] == []
    assert (await http.get("/api/v1/logs", params={"account_id": account_id}, headers=env.session)).json()[
        "logs"
    ] == own
    by_model = {"group_by": "USAGE_GROUPING_MODEL"}
    totals = (await http.get("/api/v1/usage", params=by_model, headers=env.session)).json()["buckets"]
    assert [bucket["cost_micros"] for bucket in totals] == [own[0]["cost_micros"]]
    read = await http.get("/api/v1/usage", params={**by_model, "account_id": account_id}, headers=operator)
    assert read.json()["buckets"] == totals
    assert (await http.get("/api/v1/usage", params=by_model, headers=operator)).status_code == 400
    others = await http.get("/api/v1/usage", params={**by_model, "account_id": account_id}, headers=other)
    assert others.status_code == 404


async def test_export_pages_through_every_log(env: RelayEnv) -> None:
    for _ in range(5):
        await _call(env, "deepseek-chat")
    export = LogsExport(env.channel, request_timeout=5, page_size=2)
    app = Starlette(routes=[Route("/export", export.serve)])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://console") as client:
        reply = await client.get("/export", headers=env.session)
    assert [row["request_id"] for row in _rows(reply.text)] == [log["request_id"] for log in await _logs(env)]
    assert len(_rows(reply.text)) == 5
