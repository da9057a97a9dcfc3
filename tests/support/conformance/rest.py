"""The REST door, twice: the official openai SDK, and raw HTTP with httpx reading the SSE framing itself."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai

from tests.support.conformance.outcome import Call, Op, Outcome


class OpenAISdkDriver:
    """openai.AsyncOpenAI against /v1, no retries."""

    door = "rest-openai"

    def __init__(self, base_url: str) -> None:
        self._base_url = f"{base_url}/v1"

    async def call(self, call: Call) -> Outcome:
        async with openai.AsyncOpenAI(api_key=call.key, base_url=self._base_url, max_retries=0) as client:
            try:
                return await self._call(client, call)
            except openai.APIStatusError as exc:
                return Outcome(error=str(exc.code), http_status=exc.status_code, error_type=exc.type)

    async def _call(self, client: openai.AsyncOpenAI, call: Call) -> Outcome:
        if call.op is Op.MODELS:
            return Outcome(model_ids=frozenset([model.id async for model in client.models.list()]))
        if call.op is Op.EMBED:
            vectors = await client.embeddings.create(model=call.model, input=[call.text])
            return Outcome(vectors=len(vectors.data), model=vectors.model)
        params: Any = call.chat_params()
        if call.op is Op.CHAT:
            answer = await client.chat.completions.create(**params)
            assert answer.usage is not None
            content = answer.choices[0].message.content or ""
            return Outcome(text=content, completion_tokens=answer.usage.completion_tokens, model=answer.model)
        text, chunks, tokens, model = "", 0, None, ""
        stream = await client.chat.completions.create(**params, stream=True)
        async with stream:
            async for chunk in stream:
                chunks += 1
                model = model or chunk.model
                text += "".join(choice.delta.content or "" for choice in chunk.choices)
                tokens = chunk.usage.completion_tokens if chunk.usage else tokens
                if call.cancel_after is not None and chunks >= call.cancel_after:
                    return Outcome(text=text, model=model, chunks=chunks, cancelled=True)
        return Outcome(text=text, completion_tokens=tokens, model=model, chunks=chunks)


class RawHttpDriver:
    """httpx with hand-built OpenAI JSON bodies and a hand-read `data:` stream."""

    door = "rest-httpx"

    def __init__(self, base_url: str) -> None:
        self._base_url = base_url

    async def call(self, call: Call) -> Outcome:
        headers = {"authorization": f"Bearer {call.key}"}
        async with httpx.AsyncClient(base_url=self._base_url, headers=headers, timeout=30) as http:
            if call.op is Op.MODELS:
                reply = await http.get("/v1/models")
                return _error(reply) or Outcome(model_ids=frozenset(model["id"] for model in reply.json()["data"]))
            if call.op is Op.EMBED:
                reply = await http.post("/v1/embeddings", json=call.embed_params())
                return _error(reply) or Outcome(vectors=len(reply.json()["data"]), model=reply.json()["model"])
            if call.op is Op.CHAT:
                reply = await http.post("/v1/chat/completions", json=call.chat_params())
                if failed := _error(reply):
                    return failed
                body = reply.json()
                text = body["choices"][0]["message"]["content"]
                return Outcome(text=text, completion_tokens=body["usage"]["completion_tokens"], model=body["model"])
            async with http.stream("POST", "/v1/chat/completions", json=call.chat_params() | {"stream": True}) as reply:
                if reply.status_code != 200:
                    await reply.aread()
                    return _error(reply) or Outcome()
                return await _read_stream(reply, call.cancel_after)


def _error(reply: httpx.Response) -> Outcome | None:
    if reply.status_code == 200:
        return None
    error = reply.json()["error"]
    return Outcome(error=error["code"], http_status=reply.status_code, error_type=error["type"])


async def _read_stream(reply: httpx.Response, cancel_after: int | None) -> Outcome:
    text, chunks, tokens, model = "", 0, None, ""
    async for line in reply.aiter_lines():
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        chunk = json.loads(line.removeprefix("data: "))
        if "error" in chunk:
            return Outcome(error=chunk["error"]["code"], error_type=chunk["error"]["type"], chunks=chunks)
        chunks += 1
        model = model or chunk["model"]
        text += "".join(choice["delta"].get("content") or "" for choice in chunk["choices"])
        tokens = chunk["usage"]["completion_tokens"] if chunk.get("usage") else tokens
        if cancel_after is not None and chunks >= cancel_after:
            return Outcome(text=text, model=model, chunks=chunks, cancelled=True)
    return Outcome(text=text, completion_tokens=tokens, model=model, chunks=chunks)
