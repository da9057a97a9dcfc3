"""The seam between the fake upstream's dispatcher and its wire formats (OpenAI chat, Anthropic, embeddings)."""

from __future__ import annotations

import dataclasses
import json
from abc import ABC, abstractmethod
from typing import Any

import anyio

from tests.support.fake_upstream.exchange import EVENT_STREAM, JSON, Exchange
from tests.support.fake_upstream.ledger import BillEntry, Ledger, Tokens
from tests.support.fake_upstream.scenario import Scenario


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


@dataclasses.dataclass
class Call:
    """One accepted request on its way to an answer."""

    exchange: Exchange
    body: dict[str, Any]
    api: str
    """openai | deepseek | anthropic | embeddings."""
    scenario: Scenario
    failing: bool
    """The failure settings (cut_after, error_after…) apply to this attempt."""
    key: str
    serial: int
    created: int
    ledger: Ledger
    response_headers: list[tuple[bytes, bytes]] = dataclasses.field(default_factory=list)
    cut: bool = False
    """Set by a stream writer: the dispatcher then drops the connection."""
    emitted: int = 0
    """Pieces written so far (streams), for billing a stream that ends early."""

    @property
    def model(self) -> str:
        return str(self.body.get("model", ""))

    def bill(self, tokens: Tokens, outcome: str) -> None:
        if self.exchange.disconnected and outcome == "complete":
            outcome = "disconnected"
        self.ledger.add(BillEntry(self.key, self.api, self.model, tokens, outcome))

    async def send_json(self, body: bytes) -> None:
        """A unary 200 answer (after blank-line keep-alives if those already started the response)."""
        if self.exchange.started:
            await self.exchange.end(body)
        else:
            await self.exchange.respond(200, body, self.response_headers, JSON)

    async def open_stream(self) -> None:
        if not self.exchange.started:
            await self.exchange.start(200, EVENT_STREAM, self.response_headers)

    async def play(self, frames: list[tuple[bytes, bool]], tail: int, error_frame: bytes) -> str:
        """Writes SSE frames (flagged when they carry a generated piece), pacing pieces and breaking as the
        scenario says; `tail` is the index of the first frame after the last piece. Returns the outcome.
        Frames not separated by a wait go out in one write (one syscall instead of one per frame)."""
        limit, how = self.stop_after()
        interval = self.scenario.chunk_interval_ms / 1000
        played = 0
        pending: list[bytes] = []
        for index, (frame, piece) in enumerate(frames):
            if limit is not None and played >= limit and (piece or index == tail):
                if how == "cut":
                    await self.exchange.write(b"".join(pending))
                    self.cut = True
                else:
                    await self.exchange.end(b"".join([*pending, error_frame]))
                return how
            if piece and interval > 0 and played > 0:
                await self.exchange.write(b"".join(pending))
                pending.clear()
                await anyio.sleep(interval)
            pending.append(frame)
            if piece:
                played += 1
                self.emitted += 1
        await self.exchange.end(b"".join(pending))
        return "complete"

    def stop_after(self) -> tuple[int | None, str]:
        """(pieces, "cut" | "error_event") when this stream is to break early, else (None, "")."""
        if not self.failing:
            return None, ""
        if self.scenario.cut_after is not None:
            return self.scenario.cut_after, "cut"
        if self.scenario.error_after is not None:
            return self.scenario.error_after, "error_event"
        return None, ""


def hostile(usage: dict[str, Any], kind: str | None) -> dict[str, Any]:
    """`usage` with every integer replaced by a broken value of `kind` (mixed cycles through the others)."""
    if kind is None:
        return usage
    position = 0

    def spoil(value: int) -> Any:
        nonlocal position
        chosen = ("negative", "float", "absurd", "string")[position % 4] if kind == "mixed" else kind
        position += 1
        return {"negative": -value - 1, "float": value + 0.5, "absurd": 10**20 + value, "string": str(value)}[chosen]

    def walk(node: dict[str, Any]) -> dict[str, Any]:
        return {
            name: walk(value) if isinstance(value, dict) else spoil(value) if type(value) is int else value
            for name, value in node.items()
        }

    return walk(usage)


class Wire(ABC):
    """One endpoint's wire format."""

    @abstractmethod
    def api(self, body: dict[str, Any]) -> str:
        """The flavour answering this body."""

    @abstractmethod
    def authorized(self, headers: dict[str, str], key: str) -> bool: ...

    @abstractmethod
    def error(self, api: str, status: int, message: str) -> bytes:
        """The provider's error body for an HTTP status."""

    @abstractmethod
    def invalid(self, body: dict[str, Any], headers: dict[str, str]) -> str | None:
        """Why the provider would answer 400, or None."""

    @abstractmethod
    def scenario_text(self, body: dict[str, Any]) -> str:
        """Text searched for scenario markers."""

    def streaming(self, body: dict[str, Any]) -> bool:
        return body.get("stream") is True

    def keepalive(self, api: str, stream: bool) -> bytes:
        """Bytes sent while queued: an SSE comment in streams, a blank line before JSON (DeepSeek's way)."""
        return b": keep-alive\n\n" if stream else b"\n"

    def request_id_header(self) -> bytes:
        return b"x-request-id"

    @abstractmethod
    async def answer(self, call: Call) -> None:
        """Writes the successful answer and bills it."""
