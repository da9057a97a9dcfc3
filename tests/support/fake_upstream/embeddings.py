"""`POST /v1/embeddings` the OpenAI way, with deterministic unit vectors."""

from __future__ import annotations

import base64
import hashlib
import math
import random
import struct
from typing import Any

from tests.support.fake_upstream.base import Call, Wire, dumps, hostile
from tests.support.fake_upstream.ledger import Tokens
from tests.support.fake_upstream.openai_chat import openai_error

DEFAULT_DIMENSIONS = 8


def _inputs(raw: Any) -> list[str | list[int]] | None:
    """The inputs as a list of texts or token arrays; None when the shape is wrong."""
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and raw:
        if all(type(item) is int for item in raw):
            return [raw]
        if all(isinstance(item, str) for item in raw):
            return list(raw)
        if all(isinstance(item, list) and all(type(n) is int for n in item) for item in raw):
            return list(raw)
    return None


def vector(item: str | list[int], dimensions: int) -> list[float]:
    """A unit vector that depends only on the input and the dimension count."""
    seed = hashlib.blake2b(repr(item).encode(), digest_size=8).digest()
    rng = random.Random(int.from_bytes(seed, "big"))
    values = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def input_tokens(item: str | list[int]) -> int:
    return len(item) // 4 + 1 if isinstance(item, str) else len(item)


class Embeddings(Wire):
    """Embeddings, float or base64 (little-endian float32, what the openai SDK decodes)."""

    def api(self, body: dict[str, Any]) -> str:
        return "embeddings"

    def authorized(self, headers: dict[str, str], key: str) -> bool:
        return headers.get("authorization") == f"Bearer {key}"

    def error(self, api: str, status: int, message: str) -> bytes:
        return openai_error(status, message)

    def invalid(self, body: dict[str, Any], headers: dict[str, str]) -> str | None:
        if not isinstance(body.get("model"), str):
            return "you must provide a model parameter"
        if _inputs(body.get("input")) is None:
            return "'input' must be a non-empty string, array of strings or array of token arrays"
        if body.get("encoding_format", "float") not in ("float", "base64"):
            return "'encoding_format' must be float or base64"
        dimensions = body.get("dimensions", DEFAULT_DIMENSIONS)
        if type(dimensions) is not int or dimensions < 1:
            return "'dimensions' must be a positive integer"
        return None

    def scenario_text(self, body: dict[str, Any]) -> str:
        items = _inputs(body["input"]) or []
        return " ".join(item for item in items if isinstance(item, str))

    def streaming(self, body: dict[str, Any]) -> bool:
        return False

    async def answer(self, call: Call) -> None:
        items = _inputs(call.body["input"]) or []
        dimensions = call.body.get("dimensions", DEFAULT_DIMENSIONS)
        as_base64 = call.body.get("encoding_format") == "base64"
        data = []
        for index, item in enumerate(items):
            values = vector(item, dimensions)
            encoded: Any = values
            if as_base64:
                encoded = base64.b64encode(struct.pack(f"<{dimensions}f", *values)).decode()
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        tokens = sum(input_tokens(item) for item in items)
        call.bill(Tokens(input=tokens), "complete")
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        body: dict[str, Any] = {"object": "list", "data": data, "model": call.model}
        if not call.scenario.no_usage:
            body["usage"] = hostile(usage, call.scenario.hostile_usage)
        await call.send_json(dumps(body))
