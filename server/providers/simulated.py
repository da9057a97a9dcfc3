"""The simulated channel: answers generated locally, with realistic usage and pacing, and no provider.

It lets a newcomer try the whole path (keys, limits, billing, logs) with no provider account. Its
answers say that they are simulated; an operator routes real traffic to it only by choice.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import struct
import time
from collections.abc import AsyncIterator
from typing import Any

from tollgate.v1 import chat_pb2, relay_pb2

from server.domain.ids import new_id
from server.domain.token_count import prompt_tokens, text_tokens
from server.providers.base import ChatCall, Deadlines

ANSWER_WORDS = 24
FIRST_BYTE_SECONDS = 0.05
WORD_INTERVAL_SECONDS = 0.01
EMBEDDING_DIMENSIONS = 8


def _words(params: chat_pb2.ChatCompletionParams) -> list[str]:
    question = next((m.content for m in reversed(params.messages) if m.role == "user" and m.content), "")
    topic = " ".join(question.split()[:8]) or "your message"
    words = f"(simulated answer) Tollgate received: {topic}.".split()
    filler = "This text is generated locally so the whole relay path can be tried.".split()
    while len(words) < ANSWER_WORDS:
        words += filler
    limit = params.max_completion_tokens or params.max_tokens or ANSWER_WORDS
    return words[: min(ANSWER_WORDS, limit)]


def _usage(params: chat_pb2.ChatCompletionParams, completion: int) -> chat_pb2.Usage:
    prompt = prompt_tokens(params)
    return chat_pb2.Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


class SimulatedProvider:
    """A channel of type `simulated`."""

    async def complete(self, call: ChatCall) -> relay_pb2.CreateChatCompletionResponse:
        params = call.params
        words = _words(params)
        await asyncio.sleep(FIRST_BYTE_SECONDS + WORD_INTERVAL_SECONDS * len(words))
        text = " ".join(words)
        finish = "length" if len(words) < ANSWER_WORDS else "stop"
        return relay_pb2.CreateChatCompletionResponse(
            id=new_id("chatcmpl"),
            object="chat.completion",
            created=int(time.time()),
            model=params.model,
            choices=[
                chat_pb2.ChatChoice(
                    index=0, message=chat_pb2.ChatMessage(role="assistant", content=text), finish_reason=finish
                )
            ],
            usage=_usage(params, len(words)),
        )

    async def stream(self, call: ChatCall) -> AsyncIterator[relay_pb2.StreamChatCompletionResponse]:
        params = call.params
        words = _words(params)
        chunk_id, created = new_id("chatcmpl"), int(time.time())

        def chunk(**fields: Any) -> relay_pb2.StreamChatCompletionResponse:
            return relay_pb2.StreamChatCompletionResponse(
                id=chunk_id, object="chat.completion.chunk", created=created, model=params.model, **fields
            )

        await asyncio.sleep(FIRST_BYTE_SECONDS)
        yield chunk(choices=[chat_pb2.ChatChunkChoice(delta=chat_pb2.ChatDelta(role="assistant", content=""))])
        for index, word in enumerate(words):
            await asyncio.sleep(WORD_INTERVAL_SECONDS)
            text = word if index == 0 else " " + word
            yield chunk(choices=[chat_pb2.ChatChunkChoice(delta=chat_pb2.ChatDelta(content=text))])
        finish = "length" if len(words) < ANSWER_WORDS else "stop"
        yield chunk(choices=[chat_pb2.ChatChunkChoice(delta=chat_pb2.ChatDelta(), finish_reason=finish)])
        yield chunk(usage=_usage(params, len(words)))

    async def embed(
        self, request: relay_pb2.CreateEmbeddingRequest, deadlines: Deadlines
    ) -> relay_pb2.CreateEmbeddingResponse:
        dimensions = request.dimensions or EMBEDDING_DIMENSIONS
        texts = list(request.input) or [" ".join(map(str, ids.ids)) for ids in request.input_tokens]
        data = [
            relay_pb2.Embedding(object="embedding", index=index, embedding=_vector(text, dimensions))
            for index, text in enumerate(texts)
        ]
        tokens = sum(text_tokens(text) for text in texts)
        return relay_pb2.CreateEmbeddingResponse(
            object="list",
            data=data,
            model=request.model,
            usage=relay_pb2.EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens),
        )


def _vector(text: str, dimensions: int) -> list[float]:
    """A deterministic unit vector from the text's hash."""
    seed = hashlib.sha256(text.encode()).digest()
    raw = [struct.unpack_from(">h", seed, (2 * i) % 30)[0] / 32768 + i * 1e-3 for i in range(dimensions)]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return [x / norm for x in raw]
