"""Runs an ASGI app under uvicorn inside the caller's event loop, on a socket bound up front."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
from collections.abc import Iterator
from typing import ClassVar

import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEAD_TIMEOUT_SECONDS = 10.0
TICK_SECONDS = 1.0
"""How often an idle server wakes: the Date header's resolution."""
CONNECTION_LOST = "tollgate.connection_lost"
"""The scope extension of every request this server runs: its "future" is done once the request's connection is gone."""


class _GatewayProtocol(HttpToolsProtocol):
    """uvicorn's httptools HTTP/1.1 protocol that bounds the wait for a request head and says when a client left.

    uvicorn bounds the idle time between requests (keep-alive) but not the time a client may take to
    send a request's head, so a slow client could hold a socket for ever (slowloris). The clock runs
    from the connection's start, or from the first byte of a next request, until its head is parsed.

    Each request's scope carries the connection's `CONNECTION_LOST` future: a handler learns that its client
    left from a callback on it, instead of a task of its own waiting on `receive()` for `http.disconnect`.
    """

    head_timeout: ClassVar[float] = HEAD_TIMEOUT_SECONDS
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        super().connection_made(transport)
        self._arm_head_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope["extensions"] = {CONNECTION_LOST: {"future": self._lost}}

    def data_received(self, data: bytes) -> None:
        cycle = self.cycle
        if (cycle is None or cycle.response_complete) and self._head_timer is None:
            self._arm_head_timer()
        super().data_received(data)
        if self.cycle is not cycle:  # a request's head was parsed
            self._disarm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        if not self._lost.done():
            self._lost.set_result(None)
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.close()


def _protocol_with_head_timeout(seconds: float) -> type[HttpToolsProtocol]:
    return type("GatewayProtocol", (_GatewayProtocol,), {"head_timeout": seconds})


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handlers (the process that embeds it owns SIGTERM and SIGINT), and idle at rest.

    uvicorn's own loop wakes ten times a second to refresh the Date header (once a second) and to look for
    an exit. Here it wakes once a second, and `request_exit` wakes it at once. On a virtual machine each
    wake-up of an idle process costs far more than its work (bench/RESULTS.md).
    """

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._exit_requested = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def request_exit(self) -> None:
        self.should_exit = True
        self._exit_requested.set()

    async def main_loop(self) -> None:
        # Every tick is one on which uvicorn's `on_tick` refreshes the Date header (its counter is a multiple of 10).
        while not await self.on_tick(0):
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(TICK_SECONDS):
                    await self._exit_requested.wait()


@dataclasses.dataclass
class HttpServer:
    """A serving uvicorn and the port it is bound to."""

    port: int
    _server: _EmbeddedServer
    _task: asyncio.Task[None]

    async def stop(self, grace: float) -> None:
        """Stops accepting connections and waits up to `grace` seconds for open requests to finish."""
        self._server.config.timeout_graceful_shutdown = max(1, round(grace))
        self._server.request_exit()
        await self._task


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0 picks a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio enables TCP_NODELAY on accepted sockets only when the listening
    # socket says TCP; without it every second write of a response waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


async def start_http_server(
    app: ASGIApp, host: str, port: int, *, log_level: str = "info", head_timeout: float = HEAD_TIMEOUT_SECONDS
) -> HttpServer:
    """Binds, starts serving `app` in a tracked task, and returns once the server accepts connections."""
    sock = bind_socket(host, port)
    # proxy_headers off: the client address is the socket peer, whatever X-Forwarded-For says.
    config = uvicorn.Config(
        app,
        http=_protocol_with_head_timeout(head_timeout),
        lifespan="off",
        access_log=False,
        log_level=log_level,
        server_header=False,
        proxy_headers=False,
    )
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="http-server")
    while not server.started:
        if task.done():
            await task  # raises the start-up failure
            raise OSError(f"the HTTP server on {host}:{port} stopped during start-up")
        await asyncio.sleep(0.01)
    return HttpServer(sock.getsockname()[1], server, task)
