"""The OpenAI wire codec: OpenAI JSON (already parsed) ⇄ tollgate.v1 messages, in all four directions.

Used by the gateway (client JSON → request messages, answers → client JSON) and by the OpenAI-compatible
provider (request messages → upstream JSON, upstream JSON → answers). Imports only the generated
modules, google.protobuf and the standard library. Every malformed input raises WireError.
"""

from __future__ import annotations

from gateway.openai.wire.embeddings import (
    embedding_request_from_json,
    embedding_request_to_json,
    embedding_response_from_json,
    embedding_response_to_json,
)
from gateway.openai.wire.params import params_from_json, params_to_json
from gateway.openai.wire.responses import (
    chunk_from_json,
    chunk_to_json,
    completion_from_json,
    completion_to_json,
    usage_from_json,
    usage_to_json,
)
from gateway.openai.wire.values import UPSTREAM_KEYS, WireError

__all__ = [
    "UPSTREAM_KEYS",
    "WireError",
    "chunk_from_json",
    "chunk_to_json",
    "completion_from_json",
    "completion_to_json",
    "embedding_request_from_json",
    "embedding_request_to_json",
    "embedding_response_from_json",
    "embedding_response_to_json",
    "params_from_json",
    "params_to_json",
    "usage_from_json",
    "usage_to_json",
]
