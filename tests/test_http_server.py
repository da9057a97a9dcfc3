"""Tollgate's embedded uvicorn at rest: it wakes once a second for the Date header, and at once to stop."""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from gateway.http_server import TICK_SECONDS, HttpServer, start_http_server


async def _hello(request: Request) -> Response:
    return PlainTextResponse("hello")


@pytest.fixture
async def server() -> AsyncIterator[HttpServer]:
    started = await start_http_server(Starlette(routes=[Route("/", _hello)]), "127.0.0.1", 0, log_level="warning")
    yield started
    await started.stop(1)


async def test_stopping_wakes_the_idle_server_at_once(server: HttpServer) -> None:
    await asyncio.sleep(0.05)  # now inside its once-a-second wait
    asked = time.monotonic()
    await server.stop(1)
    assert time.monotonic() - asked < TICK_SECONDS / 2


async def test_the_date_header_follows_the_clock_between_requests(server: HttpServer) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
        first = (await client.get("/")).headers["date"]
        await asyncio.sleep(TICK_SECONDS * 1.1)
        second = (await client.get("/")).headers["date"]
    assert email.utils.parsedate_to_datetime(second) > email.utils.parsedate_to_datetime(first)
