"""Runs an ASGI app under uvicorn inside the caller's event loop, on a socket bound up front."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
from collections.abc import Iterator

import uvicorn
from starlette.types import ASGIApp


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handlers: the process that embeds it owns SIGTERM and SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclasses.dataclass
class HttpServer:
    """A serving uvicorn and the port it is bound to."""

    port: int
    _server: _EmbeddedServer
    _task: asyncio.Task[None]

    async def stop(self, grace: float) -> None:
        """Stops accepting connections and waits up to `grace` seconds for open requests to finish."""
        self._server.config.timeout_graceful_shutdown = max(1, round(grace))
        self._server.should_exit = True
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


async def start_http_server(app: ASGIApp, host: str, port: int, *, log_level: str = "info") -> HttpServer:
    """Binds, starts serving `app` in a tracked task, and returns once the server accepts connections."""
    sock = bind_socket(host, port)
    # proxy_headers off: the client address is the socket peer, whatever X-Forwarded-For says.
    config = uvicorn.Config(
        app, lifespan="off", access_log=False, log_level=log_level, server_header=False, proxy_headers=False
    )
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="http-server")
    while not server.started:
        if task.done():
            await task  # raises the start-up failure
            raise OSError(f"the HTTP server on {host}:{port} stopped during start-up")
        await asyncio.sleep(0.01)
    return HttpServer(sock.getsockname()[1], server, task)
