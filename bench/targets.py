"""The three ways to reach a model: straight to the fake upstream, via Tollgate REST, via Tollgate gRPC."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from typing import Protocol

import grpc
from tollgate.v1 import chat_pb2, relay_pb2, relay_pb2_grpc

from bench.http1 import HttpConnection, HttpError, post_request
from bench.load import Call
from bench.stack import MODEL, Floor, Stack

TARGETS = ("direct", "rest", "grpc")
FLOOR_TARGETS = ("floor-rest", "floor-grpc")
"""`python -m bench.floor`: the same stack relaying with none of Tollgate's work (whole and streamed answers)."""
HOST = "127.0.0.1"


def prompt(scenario: str) -> str:
    """The user message; the fake upstream reads its per-request behaviour from the `[[scenario: ...]]` marker."""
    return f"Say hello to the benchmark [[scenario: {scenario}]]" if scenario else "Say hello to the benchmark"


@dataclasses.dataclass
class StreamTimes:
    """Milliseconds from sending a stream request to its first content token and to its end."""

    first_token_ms: float = 0.0
    total_ms: float = 0.0
    events: int = 0


class StreamCall(Call, Protocol):
    """A worker's stream call; keeps the times of every stream it completed."""

    times: list[StreamTimes]


class SseProbe:
    """Splits an SSE body into events; notes the first content token, `[DONE]` and in-band errors (cheap checks)."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.times = StreamTimes()
        self.done = False
        self.error = False
        self._buf = b""

    def __call__(self, piece: bytes) -> None:
        self._buf += piece
        *events, self._buf = self._buf.split(b"\n\n")
        for event in events:
            if not event.startswith(b"data:"):
                continue  # keep-alive comments
            self.times.events += 1
            if b"[DONE]" in event:
                self.done = True
            elif b'"error"' in event:
                self.error = True
            elif not self.times.first_token_ms and b'"content":"' in event and b'"content":""' not in event:
                self.times.first_token_ms = (time.perf_counter() - self.started) * 1000


class _HttpUnary:
    """A worker's unary call on its own keep-alive connection (reopened if the server closed it)."""

    def __init__(self, port: int, raw: bytes) -> None:
        self.port = port
        self.raw = raw
        self.connection: HttpConnection | None = None

    async def _connection(self) -> HttpConnection:
        if self.connection is None or self.connection.closed:
            self.connection = await HttpConnection.open(HOST, self.port)
        return self.connection

    async def __call__(self) -> None:
        status = await (await self._connection()).request(self.raw)
        if status != 200:
            raise HttpError(f"status {status}")

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()


class _HttpStream(_HttpUnary):
    """Streams one after another on one keep-alive connection; fails unless `[DONE]` came and no error event."""

    def __init__(self, port: int, raw: bytes) -> None:
        super().__init__(port, raw)
        self.times: list[StreamTimes] = []

    async def __call__(self) -> None:
        connection = await self._connection()
        probe = SseProbe(time.perf_counter())
        status = await connection.request(self.raw, probe)
        if status != 200 or not probe.done or probe.error:
            raise HttpError(f"stream failed: status {status}, done {probe.done}, error event {probe.error}")
        probe.times.total_ms = (time.perf_counter() - probe.started) * 1000
        self.times.append(probe.times)


class HttpTarget:
    """Direct or REST: one keep-alive connection per worker, the same JSON body either way."""

    def __init__(self, port: int, key: str) -> None:
        self.port = port
        self.headers = {"Authorization": f"Bearer {key}"}

    def request(self, scenario: str, *, stream: bool, max_tokens: int = 64) -> bytes:
        body: dict[str, object] = {
            "model": MODEL,
            "messages": [{"role": "user", "content": prompt(scenario)}],
            "max_tokens": max_tokens,
            "stream": stream,
        }
        if stream:
            body["stream_options"] = {"include_usage": True}
        return post_request(HOST, self.port, "/v1/chat/completions", json.dumps(body).encode(), self.headers)

    def unary_call(self, scenario: str = "") -> Call:
        return _HttpUnary(self.port, self.request(scenario, stream=False))

    def stream_call(self, scenario: str) -> StreamCall:
        return _HttpStream(self.port, self.request(scenario, stream=True))


class GrpcTarget:
    """gRPC over one channel (one HTTP/2 connection) shared by every worker, as a gRPC client would."""

    def __init__(self, port: int, key: str) -> None:
        self.channel = grpc.aio.insecure_channel(f"{HOST}:{port}")
        self.stub = relay_pb2_grpc.RelayServiceStub(self.channel)
        self.metadata = (("authorization", f"Bearer {key}"),)

    @staticmethod
    def params(scenario: str, *, stream: bool) -> chat_pb2.ChatCompletionParams:
        return chat_pb2.ChatCompletionParams(
            model=MODEL,
            messages=[chat_pb2.ChatMessage(role="user", content=prompt(scenario))],
            max_tokens=64,
            stream_options=chat_pb2.StreamOptions(include_usage=True) if stream else None,
        )

    def unary_call(self, scenario: str = "") -> Call:
        return _GrpcUnary(self, relay_pb2.CreateChatCompletionRequest(params=self.params(scenario, stream=False)))

    def stream_call(self, scenario: str) -> StreamCall:
        return _GrpcStream(self, relay_pb2.StreamChatCompletionRequest(params=self.params(scenario, stream=True)))

    async def close(self) -> None:
        await self.channel.close()


class _GrpcUnary:
    def __init__(self, target: GrpcTarget, request: relay_pb2.CreateChatCompletionRequest) -> None:
        self.target = target
        self.request = request

    async def __call__(self) -> None:
        await self.target.stub.CreateChatCompletion(self.request, metadata=self.target.metadata, timeout=60)

    def close(self) -> None:
        pass


class _GrpcStream:
    def __init__(self, target: GrpcTarget, request: relay_pb2.StreamChatCompletionRequest) -> None:
        self.target = target
        self.request = request
        self.times: list[StreamTimes] = []

    async def __call__(self) -> None:
        started = time.perf_counter()
        times = StreamTimes()
        call = self.target.stub.StreamChatCompletion(self.request, metadata=self.target.metadata, timeout=120)
        async for chunk in call:
            times.events += 1
            if not times.first_token_ms and any(choice.delta.content for choice in chunk.choices):
                times.first_token_ms = (time.perf_counter() - started) * 1000
        times.total_ms = (time.perf_counter() - started) * 1000
        self.times.append(times)

    def close(self) -> None:
        pass


@dataclasses.dataclass
class Targets:
    """Every way to reach the model in one run, by name: TARGETS, and FLOOR_TARGETS when a floor runs."""

    by_name: dict[str, HttpTarget | GrpcTarget]

    @classmethod
    def of(cls, stack: Stack, floor: Floor | None = None) -> Targets:
        found: dict[str, HttpTarget | GrpcTarget] = {
            "direct": HttpTarget(stack.upstream_port, stack.upstream_key),
            "rest": HttpTarget(stack.http_port, stack.api_key),
            "grpc": GrpcTarget(stack.grpc_port, stack.api_key),
        }
        if floor is not None:  # it needs no key: it sends the upstream's own
            found["floor-rest"] = HttpTarget(floor.http_port, "")
            found["floor-grpc"] = GrpcTarget(floor.grpc_port, "")
        return cls(found)

    def unary_calls(self, name: str, concurrency: int, scenario: str = "") -> Sequence[Call]:
        return [self.by_name[name].unary_call(scenario) for _ in range(concurrency)]

    def stream_calls(self, name: str, concurrency: int, scenario: str) -> Sequence[StreamCall]:
        return [self.by_name[name].stream_call(scenario) for _ in range(concurrency)]

    async def close(self) -> None:
        for target in self.by_name.values():
            if isinstance(target, GrpcTarget):
                await target.close()


def server_of(target: str) -> str:
    """The process whose CPU a target's calls cost: the floor's, or Tollgate's."""
    return "floor" if target in FLOOR_TARGETS else "tollgate"
