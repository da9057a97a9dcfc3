"""Requests that are too large or too slow are refused early, without holding sockets or reading it all."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from tests.support.inprocess import running_inprocess

SHORT_TIMEOUTS = {"TOLLGATE_HTTP_HEAD_TIMEOUT_SECONDS": "0.5", "TOLLGATE_HTTP_BODY_TIMEOUT_SECONDS": "0.5"}


async def _connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


def _head(path: str, length: int) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: tollgate\r\nAuthorization: Bearer sk-anything\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


async def test_a_9_mib_body_is_refused_with_413_before_it_is_sent(tmp_path: Path) -> None:
    async with running_inprocess(tmp_path) as running:
        for path in ("/v1/chat/completions", "/api/v1/tokens"):
            reader, writer = await _connect(running.tollgate.http_server.port)
            writer.write(_head(path, 9 * 1024 * 1024) + b"{" + b" " * 65_536)
            await writer.drain()
            status_line = await asyncio.wait_for(reader.readline(), timeout=5)
            assert status_line.startswith(b"HTTP/1.1 413"), status_line
            assert b"request_too_large" in await asyncio.wait_for(reader.read(4096), timeout=5)
            writer.close()


async def test_a_body_that_trickles_gets_408(tmp_path: Path) -> None:
    async with running_inprocess(tmp_path, **SHORT_TIMEOUTS) as running:
        reader, writer = await _connect(running.tollgate.http_server.port)
        writer.write(_head("/v1/chat/completions", 100) + b'{"model":')
        await writer.drain()
        started = time.monotonic()
        status_line = await asyncio.wait_for(reader.readline(), timeout=5)
        assert status_line.startswith(b"HTTP/1.1 408"), status_line
        assert time.monotonic() - started < 3
        writer.close()


async def test_headers_that_never_finish_and_silent_connections_are_closed(tmp_path: Path) -> None:
    async with running_inprocess(tmp_path, **SHORT_TIMEOUTS) as running:
        port = running.tollgate.http_server.port
        silent_reader, silent = await _connect(port)
        slow_reader, slow = await _connect(port)
        slow.write(b"GET /v1/models HTTP/1.1\r\nHost: tollgate\r\n")
        for _ in range(3):
            await asyncio.sleep(0.2)
            slow.write(b"X-Drip: 1\r\n")  # a header now and then, never the blank line
        assert await asyncio.wait_for(slow_reader.read(), timeout=3) == b""
        assert await asyncio.wait_for(silent_reader.read(), timeout=3) == b""
        # A well-behaved client on a kept-alive connection is not affected.
        reader, writer = await _connect(port)
        for _ in range(2):
            writer.write(b"GET /v1/models HTTP/1.1\r\nHost: tollgate\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=3)
            assert head.startswith(b"HTTP/1.1 401"), head
            length = next(
                int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
            )
            await reader.readexactly(length)
            await asyncio.sleep(0.7)  # longer than the head timeout, shorter than keep-alive
        writer.close()
        for stream in (silent, slow):
            stream.close()
