"""The SSE writer on a real uvicorn: framing, keep-alive, errors before and after the first byte, disconnects."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.http_server import start_http_server
from gateway.sse import event_stream_response, frame


class Scenario:
    """What the test endpoint streams, and what the test observes of the source."""

    def __init__(self) -> None:
        self.source_closed = asyncio.Event()
        self.items: list[bytes | Exception | float] = []

    async def source(self) -> AsyncGenerator[bytes, None]:
        try:
            for item in self.items:
                if isinstance(item, Exception):
                    raise item
                if isinstance(item, float):
                    await asyncio.sleep(item)
                    continue
                yield frame(item)
        finally:
            self.source_closed.set()


@pytest.fixture
async def served() -> AsyncIterator[tuple[str, Scenario]]:
    scenario = Scenario()

    async def endpoint(request: Request) -> Response:
        try:
            return await event_stream_response(
                scenario.source(),
                error_event=lambda exc: frame(b'{"error":{"message":"' + str(exc).encode() + b'"}}'),
                keepalive_seconds=0.1,
            )
        except RuntimeError as exc:
            return JSONResponse({"error": str(exc)}, status_code=503)

    app = Starlette(routes=[Route("/stream", endpoint)])
    server = await start_http_server(app, "127.0.0.1", 0, log_level="warning")
    yield f"http://127.0.0.1:{server.port}/stream", scenario
    await server.stop(1)


async def test_events_are_framed_and_terminated(served: tuple[str, Scenario]) -> None:
    url, scenario = served
    scenario.items = [b'{"n":1}', b'{"n":2}']
    async with httpx.AsyncClient() as client:
        reply = await client.get(url)
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/event-stream")
    assert reply.headers["cache-control"] == "no-cache"
    assert reply.headers["x-accel-buffering"] == "no"
    assert "content-encoding" not in reply.headers
    assert reply.text == 'data: {"n":1}\n\ndata: {"n":2}\n\ndata: [DONE]\n\n'


async def test_silence_is_filled_with_keepalive_comments(served: tuple[str, Scenario]) -> None:
    url, scenario = served
    scenario.items = [b'{"n":1}', 0.35, b'{"n":2}']
    async with httpx.AsyncClient() as client:
        reply = await client.get(url)
    body = reply.text
    assert body.startswith('data: {"n":1}\n\n')
    assert body.count(": keep-alive\n\n") >= 2
    assert body.endswith('data: {"n":2}\n\ndata: [DONE]\n\n')


async def test_error_before_the_first_event_is_an_http_error(served: tuple[str, Scenario]) -> None:
    url, scenario = served
    scenario.items = [RuntimeError("upstream refused")]
    async with httpx.AsyncClient() as client:
        reply = await client.get(url)
    assert reply.status_code == 503
    assert reply.json() == {"error": "upstream refused"}
    assert scenario.source_closed.is_set()


async def test_error_after_the_first_event_is_in_band_without_done(served: tuple[str, Scenario]) -> None:
    url, scenario = served
    scenario.items = [b'{"n":1}', RuntimeError("cut")]
    async with httpx.AsyncClient() as client:
        reply = await client.get(url)
    assert reply.status_code == 200
    assert reply.text == 'data: {"n":1}\n\ndata: {"error":{"message":"cut"}}\n\n'
    assert "[DONE]" not in reply.text


async def test_client_disconnect_closes_the_source(served: tuple[str, Scenario]) -> None:
    url, scenario = served
    scenario.items = [b'{"n":1}', 30.0, b'{"n":2}']
    async with httpx.AsyncClient() as client, client.stream("GET", url) as reply:
        async for line in reply.aiter_lines():
            if line.startswith("data:"):
                break
    await asyncio.wait_for(scenario.source_closed.wait(), 5)


async def test_no_keepalive_before_the_first_event_and_empty_streams_just_end(served: tuple[str, Scenario]) -> None:
    url, scenario = served
    scenario.items = [0.35, RuntimeError("late refusal")]
    async with httpx.AsyncClient() as client:
        reply = await client.get(url)
    assert reply.status_code == 503
    scenario.items = []
    async with httpx.AsyncClient() as client:
        reply = await client.get(url)
    assert reply.text == "data: [DONE]\n\n"
