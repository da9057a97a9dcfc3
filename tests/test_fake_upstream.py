"""The fake upstream against the official SDKs and raw HTTP: wire shapes, scenarios, recording and the bill."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest
import pytest_asyncio

from tests.support.fake_upstream import FakeConfig, FakeUpstream, Prices, Tokens, running_fake_upstream

KEY = "sk-upstream-test"
TOOLS: list[Any] = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}}
]


# One server for the module (starting and stopping uvicorn costs ~0.2 s); each test gets it reset.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def served() -> AsyncIterator[FakeUpstream]:
    async with running_fake_upstream(FakeConfig(key=KEY, chunks=4)) as started:
        yield started


@pytest_asyncio.fixture(loop_scope="module")
async def upstream(served: FakeUpstream) -> AsyncIterator[FakeUpstream]:
    await served.wait_idle()
    served.reset()
    yield served


@pytest_asyncio.fixture(loop_scope="module")
async def sdk(upstream: FakeUpstream) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=f"{upstream.base_url}/v1", api_key=KEY, max_retries=0) as client:
        yield client


@pytest_asyncio.fixture(loop_scope="module")
async def http(upstream: FakeUpstream) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=upstream.base_url, timeout=5) as client:
        yield client


def user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


def anthropic_headers(**extra: str) -> dict[str, str]:
    return {"x-api-key": KEY, "anthropic-version": "2023-06-01", **extra}


def sse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) of every Anthropic event; asserts each has its event line."""
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        assert set(lines) == {"event", "data"}, block
        data = json.loads(lines["data"])
        assert data["type"] == lines["event"]
        events.append((lines["event"], data))
    return events


async def test_unary_answer_usage_record_and_bill(sdk: openai.AsyncOpenAI, upstream: FakeUpstream) -> None:
    messages: Any = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is the weather?"}]
    reply = await sdk.chat.completions.create(model="gpt-test", messages=messages, max_completion_tokens=100)
    assert reply.choices[0].message.content == "Echo: What is the"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    prompt = (len("Be brief.") + len("What is the weather?")) // 4 + 2
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (prompt, 4)
    [seen] = upstream.requests
    assert seen.path == "/v1/chat/completions"
    assert seen.body["max_completion_tokens"] == 100
    assert seen.headers["authorization"] == "<redacted>"
    assert seen.auth_ok
    [entry] = upstream.bill
    assert entry.tokens == Tokens(input=prompt, output=4)
    assert (entry.api, entry.model, entry.outcome) == ("openai", "gpt-test", "complete")
    assert upstream.bill_total(Prices(input="1", output="2")) == Decimal(prompt + 8) / 1_000_000


async def test_stream_with_usage_chunk(sdk: openai.AsyncOpenAI) -> None:
    stream = await sdk.chat.completions.create(
        model="gpt-test", messages=user("hi there"), stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Echo: hi there Echo:"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4
    assert all(chunk.usage is None for chunk in chunks[:-1])


async def test_stream_without_include_usage_has_no_usage(http: httpx.AsyncClient) -> None:
    body = {"model": "gpt-test", "messages": user("hi"), "stream": True}
    reply = await http.post("/v1/chat/completions", json=body, headers={"authorization": f"Bearer {KEY}"})
    assert '"usage":{' not in reply.text
    assert reply.text.endswith("data: [DONE]\n\n")


async def test_tool_call_stream_accumulates_in_sdk(sdk: openai.AsyncOpenAI, upstream: FakeUpstream) -> None:
    async with sdk.chat.completions.stream(
        model="gpt-test", messages=user("please call a tool"), tools=TOOLS
    ) as stream:
        final = await stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    [call] = choice.message.tool_calls
    assert call.type == "function"
    assert call.id.startswith("call_") and call.id.count("call_") == 1
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"query": "please call a tool"}
    assert upstream.bill[0].tokens.output == 4


async def test_unary_tool_call_and_answer_after_tool_result(sdk: openai.AsyncOpenAI) -> None:
    first = await sdk.chat.completions.create(model="gpt-test", messages=user("call a tool now"), tools=TOOLS)
    message = first.choices[0].message
    assert first.choices[0].finish_reason == "tool_calls" and message.content is None
    assert message.tool_calls is not None
    call = message.tool_calls[0]
    messages: Any = [
        *user("call a tool now"),
        message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    second = await sdk.chat.completions.create(model="gpt-test", messages=messages, tools=TOOLS)
    assert second.choices[0].message.content == "Echo: sunny Echo: sunny"


async def test_images_are_counted_and_max_tokens_caps(sdk: openai.AsyncOpenAI) -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    messages: Any = [{"role": "user", "content": [{"type": "text", "text": "look"}, image, image]}]
    reply = await sdk.chat.completions.create(model="gpt-test", messages=messages, max_tokens=2)
    assert reply.choices[0].message.content == "Echo(images=2): look"
    assert reply.choices[0].finish_reason == "length"


async def test_deepseek_reasoner_streams_reasoning_first(sdk: openai.AsyncOpenAI) -> None:
    stream = await sdk.chat.completions.create(
        model="deepseek-reasoner",
        messages=user("why [[scenario: reasoning=2, cache_read=3]]"),
        stream=True,
        stream_options={"include_usage": True},
    )
    kinds = []
    usage: Any = None
    async for chunk in stream:
        if not chunk.choices:
            usage = chunk.usage
            continue
        delta = chunk.choices[0].delta
        if getattr(delta, "reasoning_content", None):
            kinds.append("reasoning")
        elif delta.content:
            kinds.append("content")
    assert kinds == ["reasoning"] * 2 + ["content"] * 4
    assert usage.completion_tokens == 6 and usage.completion_tokens_details.reasoning_tokens == 2
    extra = usage.model_extra
    assert extra["prompt_cache_hit_tokens"] == 3
    assert extra["prompt_cache_miss_tokens"] == usage.prompt_tokens - 3


async def test_embeddings_float_and_sdk_base64_agree(sdk: openai.AsyncOpenAI, upstream: FakeUpstream) -> None:
    floats = await sdk.embeddings.create(model="emb", input=["a", "bb"], dimensions=5, encoding_format="float")
    decoded = await sdk.embeddings.create(model="emb", input=["a", "bb"], dimensions=5)  # the SDK asks base64
    assert upstream.requests[1].body["encoding_format"] == "base64"
    assert [len(item.embedding) for item in floats.data] == [5, 5]
    assert floats.data[0].embedding != floats.data[1].embedding
    for exact, packed in zip(floats.data, decoded.data, strict=True):
        assert packed.embedding == pytest.approx(exact.embedding, rel=1e-6)
    assert floats.usage.prompt_tokens == 2


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, openai.BadRequestError),
        (404, openai.NotFoundError),
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
    ],
)
async def test_error_statuses_map_to_sdk_exceptions(
    sdk: openai.AsyncOpenAI, status: int, error: type[openai.APIStatusError]
) -> None:
    with pytest.raises(error) as raised:
        await sdk.chat.completions.create(
            model="gpt-test", messages=user("x"), extra_headers={"x-fake-scenario": f"status={status},retry_after=7"}
        )
    assert raised.value.status_code == status
    assert raised.value.response.headers["retry-after"] == "7"
    body: Any = raised.value.body
    assert set(body) == {"message", "type", "param", "code"}
    assert raised.value.request_id is not None


async def test_wrong_key_is_401(upstream: FakeUpstream) -> None:
    async with openai.AsyncOpenAI(base_url=f"{upstream.base_url}/v1", api_key="wrong", max_retries=0) as client:
        with pytest.raises(openai.AuthenticationError):
            await client.chat.completions.create(model="gpt-test", messages=user("x"))
    assert not upstream.requests[0].auth_ok
    assert upstream.bill == []


async def test_fail_times_lets_the_sdk_retry_succeed(upstream: FakeUpstream) -> None:
    async with openai.AsyncOpenAI(base_url=f"{upstream.base_url}/v1", api_key=KEY, max_retries=2) as client:
        reply = await client.chat.completions.create(
            model="gpt-test", messages=user("x [[scenario: fail_times=2, status=503, retry_after=0.01]]")
        )
    assert reply.choices[0].finish_reason == "stop"
    assert [r.attempt for r in upstream.requests] == [1, 2, 3]
    assert len({r.key for r in upstream.requests}) == 1
    assert len(upstream.bill) == 1


async def test_fail_times_alone_fails_with_500_keyed_by_request_id(http: httpx.AsyncClient) -> None:
    headers = {"authorization": f"Bearer {KEY}", "x-request-id": "req-1", "x-fake-scenario": "fail_times=1"}
    first = await http.post("/v1/chat/completions", json={"model": "m", "messages": user("a")}, headers=headers)
    second = await http.post("/v1/chat/completions", json={"model": "m", "messages": user("b")}, headers=headers)
    assert (first.status_code, first.json()["error"]["type"], second.status_code) == (500, "server_error", 200)


async def test_cut_stream_raises_in_sdk_and_bills_what_was_sent(
    sdk: openai.AsyncOpenAI, upstream: FakeUpstream
) -> None:
    stream = await sdk.chat.completions.create(
        model="gpt-test", messages=user("x [[scenario: cut_after=2]]"), stream=True
    )
    received = []
    with pytest.raises(openai.APIConnectionError) as raised:
        async for chunk in stream:
            received.append(chunk)
    assert "incomplete chunked read" in str(raised.value.__cause__)
    assert len(received) == 3  # role chunk + 2 words
    [entry] = upstream.bill
    assert (entry.outcome, entry.tokens.output) == ("cut", 2)


async def test_error_after_raises_api_error(sdk: openai.AsyncOpenAI, upstream: FakeUpstream) -> None:
    stream = await sdk.chat.completions.create(
        model="gpt-test", messages=user("x"), stream=True, extra_headers={"x-fake-scenario": "error_after=1"}
    )
    with pytest.raises(openai.APIError) as raised:
        async for _ in stream:
            pass
    assert not isinstance(raised.value, openai.APIStatusError)
    assert raised.value.body == {
        "message": "The server had an error processing your request.",
        "type": "server_error",
        "param": None,
        "code": None,
    }
    assert upstream.bill[0].outcome == "error_event"


async def test_keepalives_while_queued(http: httpx.AsyncClient, sdk: openai.AsyncOpenAI) -> None:
    scenario = {"x-fake-scenario": "first_byte_ms=60,keepalive_ms=15"}
    headers = {"authorization": f"Bearer {KEY}", **scenario}
    body = {"model": "deepseek-chat", "messages": user("x"), "stream": True}
    streamed = await http.post("/v1/chat/completions", json=body, headers=headers)
    assert streamed.text.startswith(": keep-alive\n\n")
    unary = await http.post("/v1/chat/completions", json={**body, "stream": False}, headers=headers)
    assert unary.text.startswith("\n") and unary.json()["usage"]["prompt_cache_miss_tokens"] == 1
    stream = await sdk.chat.completions.create(
        model="deepseek-chat", messages=user("x"), stream=True, extra_headers=scenario
    )
    assert len([chunk async for chunk in stream]) == 6  # comments are skipped by the SDK


async def test_hang_until_client_gives_up(http: httpx.AsyncClient, upstream: FakeUpstream) -> None:
    body = {"model": "gpt-test", "messages": user("x [[scenario: hang]]")}
    with pytest.raises(httpx.ReadTimeout):
        await http.post("/v1/chat/completions", json=body, headers={"authorization": f"Bearer {KEY}"}, timeout=0.1)
    await upstream.wait_idle()
    assert upstream.client_disconnects == 1
    assert upstream.bill == []


async def test_disconnect_mid_stream_bills_generated_tokens(http: httpx.AsyncClient, upstream: FakeUpstream) -> None:
    body = {"model": "gpt-test", "messages": user("x [[scenario: chunks=50, chunk_interval_ms=10]]"), "stream": True}
    headers = {"authorization": f"Bearer {KEY}"}
    async with http.stream("POST", "/v1/chat/completions", json=body, headers=headers) as reply:
        data_lines = 0
        async for line in reply.aiter_lines():
            data_lines += line.startswith("data:")
            if data_lines == 3:  # role chunk + 2 words
                break
        assert upstream.in_flight == 1
    await upstream.wait_idle()
    assert upstream.client_disconnects == 1
    [entry] = upstream.bill
    assert entry.outcome == "disconnected"
    assert 2 <= entry.tokens.output < 10


async def test_usage_variants(http: httpx.AsyncClient) -> None:
    headers = {"authorization": f"Bearer {KEY}"}
    body: dict[str, Any] = {"model": "gpt-test", "messages": user("x [[scenario: hostile_usage=negative]]")}
    usage = (await http.post("/v1/chat/completions", json=body, headers=headers)).json()["usage"]
    assert usage["prompt_tokens"] < 0 and usage["completion_tokens"] < 0
    body = {"model": "gpt-test", "messages": user("x [[scenario: hostile_usage]]")}
    usage = (await http.post("/v1/chat/completions", json=body, headers=headers)).json()["usage"]
    assert usage["prompt_tokens"] < 0 and usage["total_tokens"] > 10**19
    assert isinstance(usage["completion_tokens"], float)
    options = {"include_usage": True}
    body = {"model": "gpt-test", "messages": user("[[scenario: no_usage]]"), "stream": True, "stream_options": options}
    assert '"usage":{' not in (await http.post("/v1/chat/completions", json=body, headers=headers)).text
    body = {"model": "gpt-test", "messages": user("[[scenario: chunkz=2]]")}
    refused = await http.post("/v1/chat/completions", json=body, headers=headers)
    assert refused.status_code == 400 and "chunkz" in refused.json()["error"]["message"]


async def test_anthropic_stream_event_sequence(http: httpx.AsyncClient, upstream: FakeUpstream) -> None:
    body = {
        "model": "claude-test",
        "max_tokens": 50,
        "stream": True,
        "system": "Be brief.",
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "messages": user("hello [[scenario: reasoning=2, chunks=3]]"),
    }
    reply = await http.post("/v1/messages", json=body, headers=anthropic_headers())
    assert reply.headers["request-id"].startswith("req_")
    events = sse_events(reply.text)
    names = [name for name, _ in events]
    assert names == [
        "message_start",
        *["content_block_start", "ping", "content_block_delta", "content_block_delta", "content_block_delta"],
        "content_block_stop",
        *["content_block_start", "content_block_delta", "content_block_delta", "content_block_delta"],
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    prompt = (len("Be brief.") + len("hello [[scenario: reasoning=2, chunks=3]]")) // 4 + 2
    start_usage = events[0][1]["message"]["usage"]
    assert (start_usage["input_tokens"], start_usage["output_tokens"]) == (prompt, 1)
    final = events[-2][1]
    assert final["delta"]["stop_reason"] == "end_turn"
    assert (final["usage"]["input_tokens"], final["usage"]["output_tokens"]) == (prompt, 5)
    deltas = [data["delta"]["type"] for name, data in events if name == "content_block_delta"]
    assert deltas == ["thinking_delta", "thinking_delta", "signature_delta"] + ["text_delta"] * 3
    assert upstream.bill[0].tokens == Tokens(input=prompt, output=5, reasoning=2)


async def test_anthropic_usage_scenarios(http: httpx.AsyncClient) -> None:
    text = "cached " * 20
    content = [{"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}]
    body = {"model": "claude-test", "max_tokens": 50, "messages": [{"role": "user", "content": content}]}
    usage = (await http.post("/v1/messages", json=body, headers=anthropic_headers())).json()["usage"]
    prompt = len(text) // 4 + 1
    assert usage["cache_read_input_tokens"] == prompt // 2
    assert usage["cache_creation_input_tokens"] == prompt // 4
    assert usage["input_tokens"] == prompt - prompt // 2 - prompt // 4
    text = "[[scenario: zero_input_in_start, cache_read=7]]"
    streamed = {**body, "stream": True, "messages": user(text)}
    events = sse_events((await http.post("/v1/messages", json=streamed, headers=anthropic_headers())).text)
    assert events[0][1]["message"]["usage"]["input_tokens"] == 0
    assert events[-2][1]["usage"]["input_tokens"] == len(text) // 4 + 1 - 7
    assert events[-2][1]["usage"]["cache_read_input_tokens"] == 7


async def test_anthropic_errors(http: httpx.AsyncClient, upstream: FakeUpstream) -> None:
    body = {"model": "claude-test", "max_tokens": 50, "messages": user("x"), "stream": True}
    overloaded = await http.post(
        "/v1/messages", json=body, headers=anthropic_headers(**{"x-fake-scenario": "status=529"})
    )
    assert overloaded.status_code == 529
    assert overloaded.json()["error"]["type"] == "overloaded_error"
    in_band = await http.post(
        "/v1/messages", json=body, headers=anthropic_headers(**{"x-fake-scenario": "error_after=1"})
    )
    events = sse_events(in_band.text)
    assert events[-1] == ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    no_version = await http.post("/v1/messages", json=body, headers={"x-api-key": KEY})
    assert no_version.status_code == 400 and no_version.json()["error"]["type"] == "invalid_request_error"
    bearer = {"authorization": f"Bearer {KEY}", "anthropic-version": "2026-10-21"}
    assert (await http.post("/v1/messages", json=body, headers=bearer)).status_code == 200
    sampled = await http.post("/v1/messages", json={**body, "temperature": 1.0}, headers=bearer)
    assert sampled.status_code == 400
    wrong = await http.post("/v1/messages", json=body, headers={**bearer, "x-api-key": "wrong"})
    assert wrong.status_code == 401 and wrong.json()["error"]["type"] == "authentication_error"


async def test_anthropic_sdk_stream_and_errors(upstream: FakeUpstream) -> None:
    anthropic = pytest.importorskip("anthropic")
    tools = [{"name": "get_weather", "input_schema": {"type": "object"}}]
    async with anthropic.AsyncAnthropic(base_url=upstream.base_url, api_key=KEY, max_retries=0) as client:
        async with client.messages.stream(
            model="claude-test", max_tokens=50, messages=user("call a tool"), tools=tools
        ) as stream:
            message = await stream.get_final_message()
        assert message.stop_reason == "tool_use"
        assert message.content[0].input == {"query": "call a tool"}
        assert message.usage.output_tokens == 4
        with pytest.raises(anthropic.OverloadedError):
            await client.messages.create(model="claude-test", max_tokens=5, messages=user("[[scenario: status=529]]"))


async def test_cli_serves_and_reports_stats() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.support.fake_upstream",
        "--port",
        "0",
        "--key",
        KEY,
        "--chunks",
        "2",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 10)).decode()
        port = int(line.rsplit(" ", 1)[1])
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            body = {"model": "gpt-test", "messages": user("hello")}
            reply = await client.post("/v1/chat/completions", json=body, headers={"authorization": f"Bearer {KEY}"})
            assert reply.json()["choices"][0]["message"]["content"] == "Echo: hello"
            stats = (await client.get("/_fake/stats")).json()
        assert stats["requests"] == 1 and stats["billed"]["gpt-test"]["output"] == 2
    finally:
        process.terminate()
        assert await asyncio.wait_for(process.wait(), 10) == 0
