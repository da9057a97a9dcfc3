"""What a caller saw, in one shape whatever the door: the answer's meaning or the error's."""

from __future__ import annotations

import dataclasses
import enum

import grpc


class Op(enum.Enum):
    """The relay calls the conformance table exercises."""

    CHAT = "chat"
    STREAM = "stream"
    MODELS = "models"
    EMBED = "embed"


@dataclasses.dataclass(frozen=True)
class Call:
    """One request as a driver sends it."""

    op: Op
    key: str
    model: str = "deepseek-chat"
    text: str = "hello"
    cancel_after: int | None = None
    """Streams: abort the call after this many chunks."""

    def chat_params(self) -> dict[str, object]:
        """The chat parameters; OpenAI's JSON and the proto3 JSON of ChatCompletionParams alike."""
        params: dict[str, object] = {"model": self.model, "messages": [{"role": "user", "content": self.text}]}
        if self.op is Op.STREAM:
            params["stream_options"] = {"include_usage": True}
        return params

    def embed_params(self) -> dict[str, object]:
        return {"model": self.model, "input": [self.text]}


@dataclasses.dataclass(frozen=True)
class Outcome:
    """The meaning of one answer. Door-specific fields (HTTP status, gRPC code, OpenAI type) are None elsewhere."""

    error: str = ""
    """The OpenAI error code on REST, the google.rpc.ErrorInfo reason over gRPC; empty on success."""
    http_status: int | None = None
    grpc_code: grpc.StatusCode | None = None
    error_type: str | None = None
    text: str = ""
    completion_tokens: int | None = None
    model: str = ""
    model_ids: frozenset[str] = frozenset()
    vectors: int = 0
    chunks: int = 0
    cancelled: bool = False
    """The client itself ended the call."""
