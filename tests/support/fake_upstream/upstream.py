"""The fake upstream's state and its raw ASGI dispatcher: auth, validation, scenario, recording, failures."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import time
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import anyio
from starlette.types import Receive, Scope, Send

from tests.support.fake_upstream.anthropic import AnthropicMessages
from tests.support.fake_upstream.base import Call, Wire, dumps
from tests.support.fake_upstream.embeddings import Embeddings
from tests.support.fake_upstream.exchange import EVENT_STREAM, JSON, Exchange, StreamCut, read_body, silence_cuts
from tests.support.fake_upstream.ledger import BillEntry, Ledger, Prices, RecordedRequest, Tokens, redact
from tests.support.fake_upstream.openai_chat import OpenAIChat, openai_error
from tests.support.fake_upstream.scenario import Scenario, ScenarioError, resolve
from tests.support.fake_upstream.tokenizer import text_tokens


@dataclasses.dataclass(frozen=True)
class FakeConfig:
    """Server-wide settings; the per-request scenario starts from these defaults."""

    key: str = "sk-fake-upstream"
    """The API key every endpoint expects."""
    chunks: int = 8
    """Default content pieces (words, or tool-argument fragments) per answer."""
    reasoning: int = 3
    """Default reasoning words when a request asks for reasoning."""
    first_byte_ms: float = 0.0
    chunk_interval_ms: float = 0.0
    keepalive_ms: float = 0.0
    record: bool = True
    """Keep every request and bill entry (turn off for long benchmarks: only totals are kept)."""

    def scenario(self) -> Scenario:
        return Scenario(
            first_byte_ms=self.first_byte_ms,
            chunk_interval_ms=self.chunk_interval_ms,
            chunks=self.chunks,
            reasoning=self.reasoning,
            keepalive_ms=self.keepalive_ms,
        )


class FakeUpstream:
    """An ASGI app speaking OpenAI, DeepSeek and Anthropic, and what it saw and billed."""

    def __init__(self, config: FakeConfig | None = None) -> None:
        self.config = config or FakeConfig()
        self.port = 0
        self.requests: list[RecordedRequest] = []
        self.ledger = Ledger(keep_entries=self.config.record)
        self.requests_seen = 0
        self.client_disconnects = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self._defaults = self.config.scenario()
        self._attempts: dict[str, int] = {}
        self._serial = itertools.count(1)
        self._routes: dict[str, Wire] = {
            "/v1/chat/completions": OpenAIChat(),
            "/v1/messages": AnthropicMessages(),
            "/v1/embeddings": Embeddings(),
        }
        silence_cuts()

    @property
    def base_url(self) -> str:
        """The URL a channel's base_url should be set to (no /v1)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def bill(self) -> list[BillEntry]:
        return self.ledger.entries

    def billed(self) -> Tokens:
        """Everything billed so far, all models together."""
        return self.ledger.total()

    def bill_total(self, prices: Prices | Mapping[str, Prices]) -> Decimal:
        """USD billed so far; `prices` is one price list or one per upstream model name."""
        return self.ledger.cost(prices)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [request for request in self.requests if request.path == path]

    def reset(self) -> None:
        """Forgets requests, bill, attempts and counters (not the requests in flight)."""
        self.requests.clear()
        self.ledger.clear()
        self._attempts.clear()
        self.requests_seen = self.client_disconnects = self.max_in_flight = 0

    async def wait_idle(self, timeout: float = 5.0) -> None:
        """Waits until no request is in flight (e.g. until a cancellation has reached the upstream)."""
        with anyio.fail_after(timeout):
            while self.in_flight:
                await anyio.sleep(0.005)

    def stats(self) -> dict[str, Any]:
        return {
            "requests": self.requests_seen,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "client_disconnects": self.client_disconnects,
            "billed": {model: dataclasses.asdict(tokens) for model, tokens in self.ledger.by_model.items()},
            "total": dataclasses.asdict(self.ledger.total()),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        exchange = Exchange(receive, send)
        cut = False
        try:
            cut = await self._dispatch(scope, receive, exchange)
        finally:
            self.in_flight -= 1
            if exchange.disconnected:
                self.client_disconnects += 1
        if cut:
            raise StreamCut

    async def _dispatch(self, scope: Scope, receive: Receive, exchange: Exchange) -> bool:
        path: str = scope["path"]
        wire = self._routes.get(path)
        if path.startswith("/_fake/"):
            await self._admin(scope["method"], path, receive, exchange)
            return False
        if wire is None or scope["method"] != "POST":
            await exchange.respond(404, openai_error(404, f"Unknown request URL: {scope['method']} {path}"))
            return False
        raw = await read_body(receive)
        if raw is None:
            exchange.disconnected = True
            return False
        self.requests_seen += 1
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        key = (
            headers.get("x-request-id")
            or headers.get("idempotency-key")
            or hashlib.blake2b(raw, digest_size=8).hexdigest()
        )
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        serial = next(self._serial)
        reply_headers = [(wire.request_id_header(), b"req_fake%d" % serial)]
        auth_ok = wire.authorized(headers, self.config.key)
        scenario, refusal = self._admit(wire, auth_ok, headers, body)
        attempt = 0
        if scenario is not None and scenario.fail_times is not None:
            attempt = self._attempts[key] = self._attempts.get(key, 0) + 1
        if self.config.record:
            recorded = RecordedRequest(
                path, redact(scope["headers"]), body, time.monotonic(), key, attempt, auth_ok, scenario
            )
            self.requests.append(recorded)
        api = wire.api(body) if isinstance(body, dict) else "openai"
        if refusal is not None or scenario is None or not isinstance(body, dict):
            status, message = refusal or (400, "invalid request")
            await exchange.respond(status, wire.error(api, status, message), reply_headers)
            return False
        failing = scenario.fail_times is None or attempt <= scenario.fail_times
        call = Call(exchange, body, api, scenario, failing, key, serial, int(time.time()), self.ledger, reply_headers)
        stream = wire.streaming(body)
        if stream or scenario.first_byte_ms > 0 or (failing and scenario.hang):
            await exchange.guarded(lambda: self._run(wire, call, stream))
        else:
            await self._run(wire, call, stream)
        return call.cut

    def _admit(
        self, wire: Wire, auth_ok: bool, headers: dict[str, str], body: Any
    ) -> tuple[Scenario | None, tuple[int, str] | None]:
        """The request's scenario, or the (status, message) the provider would refuse it with."""
        if not auth_ok:
            return None, (401, "Incorrect API key provided")
        if not isinstance(body, dict):
            return None, (400, "We could not parse the JSON body of your request.")
        if problem := wire.invalid(body, headers):
            return None, (400, problem)
        try:
            return resolve(self._defaults, headers.get("x-fake-scenario"), wire.scenario_text(body)), None
        except ScenarioError as exc:
            return None, (400, f"fake upstream: {exc}")

    async def _run(self, wire: Wire, call: Call, stream: bool) -> None:
        scenario, exchange = call.scenario, call.exchange
        status = scenario.status if call.failing else None
        hang = call.failing and scenario.hang
        keepalive_ms = scenario.keepalive_ms if status is None else 0.0
        keepalive = wire.keepalive(call.api, stream)
        if keepalive_ms > 0 and (scenario.first_byte_ms > 0 or hang):
            await exchange.start(200, EVENT_STREAM if stream else JSON, call.response_headers)
        if hang and keepalive_ms > 0:
            await exchange.wait(math.inf, keepalive_ms, keepalive)
        elif hang:
            await anyio.sleep_forever()
        await exchange.wait(scenario.first_byte_ms, keepalive_ms, keepalive)
        if status is not None:
            headers = list(call.response_headers)
            if scenario.retry_after is not None:
                headers.append((b"retry-after", scenario.retry_after.encode()))
            message = f"fake upstream: scenario status {status}"
            await exchange.respond(status, wire.error(call.api, status, message), headers)
            return
        await wire.answer(call)

    async def _admin(self, method: str, path: str, receive: Receive, exchange: Exchange) -> None:
        if method == "POST" and path == "/_fake/reset":
            self.reset()
            await exchange.respond(200, b"{}")
        elif path == "/_fake/stats":
            await exchange.respond(200, dumps(self.stats()))
        elif method == "GET" and path.startswith("/_fake/bill/"):
            entries = self.ledger.for_key(path.removeprefix("/_fake/bill/"))
            await exchange.respond(200, dumps({"entries": [dataclasses.asdict(entry) for entry in entries]}))
        elif method == "POST" and path == "/_fake/tokenize":
            text = json.loads(await read_body(receive) or b"{}").get("text", "")
            await exchange.respond(200, dumps({"tokens": text_tokens(text)}))
        else:
            await exchange.respond(404, openai_error(404, f"Unknown request URL: {method} {path}"))
