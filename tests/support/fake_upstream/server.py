"""Serving the fake upstream on loopback, in the caller's event loop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from gateway.http_server import start_http_server
from tests.support.fake_upstream.upstream import FakeConfig, FakeUpstream


@asynccontextmanager
async def running_fake_upstream(
    config: FakeConfig | None = None, *, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"
) -> AsyncIterator[FakeUpstream]:
    """Serves a fresh FakeUpstream on host:port (0 = a free port); yields it with `.port` / `.base_url` set."""
    upstream = FakeUpstream(config)
    server = await start_http_server(upstream, host, port, log_level=log_level)
    upstream.port = server.port
    try:
        yield upstream
    finally:
        await server.stop(1)
