"""`python -m bench.floor`: a relay on Tollgate's own stack that only relays, so the bench can show its floor.

It serves a chat completion, whole or streamed, as `tollgate serve` would, on the same parts (uvloop, uvicorn on
httptools with Tollgate's protocol, Tollgate's upstream client, a grpc.aio server), and does nothing else: no key,
no limit, no hold, no usage row, no metrics. REST passes the request body through and the answer back (an event
stream piece by piece, as it arrives); gRPC builds the upstream's JSON from the request and the reply, or each
streamed chunk, from the upstream's JSON with Tollgate's wire code, SSE splitter and JSON (`server/wire_json.py`),
as it must.
The bench runs it on Tollgate's core while Tollgate idles: Tollgate's added latency less the floor's is what
Tollgate's own work costs, the rest is the extra hop and the protocol stack.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from typing import Any

import grpc
import uvloop
from starlette.types import ASGIApp, Receive, Scope, Send
from tollgate.v1 import relay_pb2

from gateway.http_server import start_http_server
from gateway.openai.wire.params import params_to_json
from gateway.openai.wire.responses import chunk_from_json, completion_from_json
from server import wire_json
from server.providers.http import sse_events
from server.providers.http_client import HttpClient, HttpResponse

KEY_ENV = "BENCH_FLOOR_UPSTREAM_KEY"
_TIMEOUT = 60.0


class _Upstream:
    """The fake upstream's chat completions, over Tollgate's HTTP client."""

    def __init__(self, port: int, key: str) -> None:
        self.client = HttpClient()
        self._url = f"http://127.0.0.1:{port}/v1/chat/completions"
        self._headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}

    async def open(self, body: bytes) -> HttpResponse:
        """The response once its head is in; `release()` it when done."""
        return await self.client.post(self._url, self._headers, body, connect_timeout=_TIMEOUT, read_timeout=_TIMEOUT)

    async def post(self, body: bytes) -> tuple[int, bytes]:
        response = await self.open(body)
        try:
            return response.status, await response.read(_TIMEOUT)
        finally:
            response.release()


def _rest_app(upstream: _Upstream) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        response = await upstream.open(body)
        try:
            content_type = response.headers.get("content-type", "application/json").encode()
            if not content_type.startswith(b"text/event-stream"):
                content = await response.read(_TIMEOUT)
                headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(content))]
                await send({"type": "http.response.start", "status": response.status, "headers": headers})
                await send({"type": "http.response.body", "body": content})
                return
            headers = [(b"content-type", content_type)]
            await send({"type": "http.response.start", "status": response.status, "headers": headers})
            async for piece in response.chunks():
                await send({"type": "http.response.body", "body": piece, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            response.release()

    return app


def _relay_service(upstream: _Upstream) -> grpc.GenericRpcHandler:
    """RelayService with CreateChatCompletion and StreamChatCompletion alone."""

    async def create(
        request: relay_pb2.CreateChatCompletionRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> relay_pb2.CreateChatCompletionResponse:
        body = params_to_json(request.params)
        body["stream"] = False
        status, content = await upstream.post(wire_json.dumps(body))
        if status != 200:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"upstream answered {status}")
        return completion_from_json(wire_json.loads(content))

    async def stream(
        request: relay_pb2.StreamChatCompletionRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[relay_pb2.StreamChatCompletionResponse]:
        body = params_to_json(request.params)
        body["stream"] = True
        response = await upstream.open(wire_json.dumps(body))
        try:
            if response.status != 200:
                await context.abort(grpc.StatusCode.UNAVAILABLE, f"upstream answered {response.status}")
            async for _, data in sse_events(response):
                if data != "[DONE]":  # read on to the body's end, so the connection is reused
                    yield chunk_from_json(wire_json.loads(data))
        finally:
            response.release()

    methods: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
        "CreateChatCompletion": grpc.unary_unary_rpc_method_handler(
            create,
            request_deserializer=relay_pb2.CreateChatCompletionRequest.FromString,
            response_serializer=relay_pb2.CreateChatCompletionResponse.SerializeToString,
        ),
        "StreamChatCompletion": grpc.unary_stream_rpc_method_handler(
            stream,
            request_deserializer=relay_pb2.StreamChatCompletionRequest.FromString,
            response_serializer=relay_pb2.StreamChatCompletionResponse.SerializeToString,
        ),
    }
    return grpc.method_handlers_generic_handler("tollgate.v1.RelayService", methods)


async def _serve(upstream_port: int) -> None:
    upstream = _Upstream(upstream_port, os.environ[KEY_ENV])
    http = await start_http_server(_rest_app(upstream), "127.0.0.1", 0, log_level="warning")
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((_relay_service(upstream),))
    grpc_port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print(f"floor: http {http.port} grpc {grpc_port}", flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop(1)
        await http.stop(1)
        await upstream.client.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__)
    parser.add_argument("--upstream-port", type=int, required=True)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt), asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_serve(args.upstream_port))


if __name__ == "__main__":
    main()
