"""Real servers on loopback port 0 for tests: a grpc.aio server and a uvicorn server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
from starlette.types import ASGIApp

from gateway.http_server import start_http_server


@asynccontextmanager
async def running_grpc_server(*handlers: grpc.GenericRpcHandler) -> AsyncIterator[str]:
    """Serve the handlers on 127.0.0.1:0; yields the `host:port` target."""
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(handlers)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(grace=None)


@asynccontextmanager
async def running_uvicorn(app: ASGIApp) -> AsyncIterator[str]:
    """Serve an ASGI app on 127.0.0.1:0 the way Tollgate does; yields the base URL."""
    server = await start_http_server(app, "127.0.0.1", 0, log_level="warning")
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        await server.stop(1)
