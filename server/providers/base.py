"""The provider seam: what the relay asks of an upstream, whatever its wire format."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any, Protocol, runtime_checkable

from tollgate.v1 import chat_pb2, relay_pb2


@dataclasses.dataclass(frozen=True)
class Deadlines:
    """How long an upstream call may take, in seconds."""

    connect: float
    first_byte: float
    idle: float
    """Longest silence between two chunks of a stream."""
    total: float
    """A whole unary answer."""
    stream_total: float
    """The absolute cap on a stream."""


@dataclasses.dataclass(frozen=True)
class ChatCall:
    """One attempt at one channel: the request as this upstream must see it."""

    params: chat_pb2.ChatCompletionParams
    """Model already renamed for the upstream; the output limit already decided."""
    deadlines: Deadlines
    request_id: str
    output_limit: int
    """The most output tokens to ask for: the client's own limit, else the model's maximum. Upstreams
    that require a limit (Anthropic) are sent this; others get only what the client asked."""


@dataclasses.dataclass(frozen=True)
class MessageCall:
    """One attempt at an Anthropic Messages request, passed to an Anthropic channel as it is."""

    body: dict[str, Any]
    """The client's body with the model renamed for the upstream and `stream` set."""
    deadlines: Deadlines
    request_id: str
    beta: str = ""
    """The client's `anthropic-beta` header."""


@runtime_checkable
class NativeMessages(Protocol):
    """A channel that speaks Anthropic's Messages API itself."""

    async def create_message(self, call: MessageCall) -> dict[str, Any]:
        """The upstream's `message` object."""
        ...

    def stream_message(self, call: MessageCall) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """The upstream's (event, data) pairs up to message_stop; UpstreamError if it cuts the stream."""
        ...


class Provider(Protocol):
    """One upstream channel's wire format. Errors are domain errors (UpstreamError and friends)."""

    async def complete(self, call: ChatCall) -> relay_pb2.CreateChatCompletionResponse:
        """A whole answer."""
        ...

    def stream(self, call: ChatCall) -> AsyncIterator[relay_pb2.StreamChatCompletionResponse]:
        """The answer's chunks. The upstream is always asked for usage: when it reports it, the last
        chunk has no choices and carries the usage of the whole request. Ends by raising
        UpstreamError if the upstream cuts the stream."""
        ...

    async def embed(
        self, request: relay_pb2.CreateEmbeddingRequest, deadlines: Deadlines
    ) -> relay_pb2.CreateEmbeddingResponse:
        """Embeddings of the inputs (model already renamed for the upstream)."""
        ...
