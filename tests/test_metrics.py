"""`/metrics` and log lines: what a real call leaves in each, who may read metrics, and no content."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.app import create_gateway_app
from gateway.metrics import MetricsEndpoint
from server.interceptors import REQUEST_ID
from server.log_format import JsonFormatter
from tests.support.relay_env import RelayEnv, relay_env

CANARY = "CANARY-metrics-3b9e"
CHAT = "/tollgate.v1.RelayService/CreateChatCompletion"


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[RelayEnv]:
    async with relay_env(tmp_path) as env:
        yield env


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(scraped: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return scraped.get((name, frozenset(labels.items())), 0.0)


async def scrape(env: RelayEnv) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    reply = await env.running.http.get("/metrics")
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert CANARY not in reply.text
    return samples(reply.text)


async def test_a_relayed_call_shows_in_calls_tokens_cost_and_latency(env: RelayEnv) -> None:
    async with env.client() as client:
        answer = await client.chat.completions.create(
            model="deepseek-chat", messages=[{"role": "user", "content": f"{CANARY} hello"}]
        )
    assert answer.usage is not None
    scraped = await scrape(env)
    assert value(scraped, "tollgate_rpc_requests_total", method=CHAT, code="OK") == 1
    assert value(scraped, "tollgate_relay_calls_total", model="deepseek-chat", status="ok") == 1
    prompt = value(scraped, "tollgate_relay_tokens_total", model="deepseek-chat", kind="input")
    cached = value(scraped, "tollgate_relay_tokens_total", model="deepseek-chat", kind="cached")
    assert prompt + cached == answer.usage.prompt_tokens
    assert value(scraped, "tollgate_relay_tokens_total", model="deepseek-chat", kind="output") == (
        answer.usage.completion_tokens
    )
    logs = (await env.running.http.get("/api/v1/logs", headers=env.session)).json()["logs"]
    assert value(scraped, "tollgate_relay_cost_micros_total", model="deepseek-chat") == int(logs[0]["cost_micros"])
    assert value(scraped, "tollgate_relay_latency_seconds_count", model="deepseek-chat") == 1
    assert value(scraped, "tollgate_relay_time_to_first_token_seconds_count", model="deepseek-chat") == 1
    assert value(scraped, "tollgate_channel_breaker_state", channel="deepseek", state="closed") == 1
    assert value(scraped, "tollgate_open_holds") == 0
    assert value(scraped, "tollgate_open_requests") == 0


async def test_refusals_and_upstream_failures_are_counted_by_code_and_channel(env: RelayEnv) -> None:
    async with openai.AsyncOpenAI(api_key="sk-wrong", base_url=f"{env.running.base_url}/v1", max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError):
            await bad.models.list()
    async with env.client() as client:
        with pytest.raises(openai.APIStatusError):
            await client.chat.completions.create(
                model="deepseek-chat", messages=[{"role": "user", "content": "[[scenario: status=500]]"}]
            )
    scraped = await scrape(env)
    assert (
        value(
            scraped,
            "tollgate_rpc_requests_total",
            method="/tollgate.v1.RelayService/ListModels",
            code="UNAUTHENTICATED",
        )
        == 1
    )
    assert value(scraped, "tollgate_channel_upstream_errors_total", channel="deepseek") >= 1
    assert value(scraped, "tollgate_relay_calls_total", model="deepseek-chat", status="upstream_error") == 1


@pytest.mark.parametrize(
    ("client_host", "authorization", "status"),
    [
        ("10.1.2.3", "", 403),
        ("10.1.2.3", "Bearer wrong-token", 403),
        ("10.1.2.3", "Bearer scrape-token-123", 200),
        ("127.0.0.1", "", 200),
    ],
)
async def test_metrics_are_for_loopback_or_the_scrape_token(
    env: RelayEnv, client_host: str, authorization: str, status: int
) -> None:
    endpoint = MetricsEndpoint(env.running.tollgate.domain.metrics.render, "scrape-token-123")
    app = create_gateway_app(env.channel, request_timeout=5, metrics=endpoint)
    transport = httpx.ASGITransport(app=app, client=(client_host, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://tollgate") as http:
        reply = await http.get("/metrics", headers={"authorization": authorization} if authorization else {})
    assert reply.status_code == status
    assert ("tollgate_rpc_requests_total" in reply.text) is (status == 200)


def test_json_log_lines_carry_the_request_id_and_metadata_fields() -> None:
    record = logging.LogRecord("server.services.relay", logging.INFO, __file__, 1, "relayed", None, None)
    record.fields = {"model": "deepseek-chat", "status": "ok", "latency_ms": 12}
    token = REQUEST_ID.set("req-42")
    try:
        line = JsonFormatter().format(record)
    finally:
        REQUEST_ID.reset(token)
    entry = json.loads(line)
    assert entry["message"] == "relayed" and entry["level"] == "info"
    assert entry["request_id"] == "req-42"
    assert entry["model"] == "deepseek-chat" and entry["latency_ms"] == 12
    assert entry["time"].endswith("+00:00")
