"""`POST /v1/chat/completions` the way OpenAI and DeepSeek answer it (PROVIDERS.md §1, §2)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from tests.support.fake_upstream.answer import Plan, Prompt, add_content, first_tool_name, plan_answer
from tests.support.fake_upstream.base import Call, Wire, dumps, hostile
from tests.support.fake_upstream.ledger import Tokens

_ERROR_KINDS = {
    401: ("invalid_request_error", "invalid_api_key"),
    402: ("invalid_request_error", "insufficient_balance"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
}
STREAM_ERROR = b"data: %s\n\n" % dumps(
    {
        "error": {
            "message": "The server had an error processing your request.",
            "type": "server_error",
            "param": None,
            "code": None,
        }
    }
)


def openai_error(status: int, message: str) -> bytes:
    kind, code = _ERROR_KINDS.get(status, ("server_error" if status >= 500 else "invalid_request_error", None))
    return dumps({"error": {"message": message, "type": kind, "param": None, "code": code}})


def _bearer_ok(headers: dict[str, str], key: str) -> bool:
    return headers.get("authorization") == f"Bearer {key}"


def _text(content: Any) -> str:
    texts: list[str] = []
    add_content(Prompt(), content, texts)
    return " ".join(texts)


def usage_json(api: str, tokens: Tokens) -> dict[str, Any]:
    """OpenAI usage (DeepSeek adds its cache hit/miss counters; cache writes are plain input there)."""
    prompt = tokens.prompt
    details: dict[str, int] = {"cached_tokens": tokens.cache_read}
    if tokens.cache_write:
        details["cache_write_tokens"] = tokens.cache_write
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": tokens.output,
        "total_tokens": prompt + tokens.output,
        "prompt_tokens_details": details,
        "completion_tokens_details": {"reasoning_tokens": tokens.reasoning},
    }
    if api == "deepseek":
        usage["prompt_cache_hit_tokens"] = tokens.cache_read
        usage["prompt_cache_miss_tokens"] = prompt - tokens.cache_read
    return usage


class OpenAIChat(Wire):
    """Chat completions, unary and SSE; DeepSeek flavour for `deepseek*` models."""

    def api(self, body: dict[str, Any]) -> str:
        return "deepseek" if str(body.get("model", "")).startswith("deepseek") else "openai"

    def authorized(self, headers: dict[str, str], key: str) -> bool:
        return _bearer_ok(headers, key)

    def error(self, api: str, status: int, message: str) -> bytes:
        return openai_error(status, message)

    def invalid(self, body: dict[str, Any], headers: dict[str, str]) -> str | None:
        if not isinstance(body.get("model"), str):
            return "you must provide a model parameter"
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            return "'messages' must be a non-empty array of objects"
        if body.get("stream_options") is not None and body.get("stream") is not True:
            return "The 'stream_options' parameter is only allowed when 'stream' is enabled."
        return None

    def scenario_text(self, body: dict[str, Any]) -> str:
        for message in reversed(body["messages"]):
            if message.get("role") == "user":
                return _text(message.get("content"))
        return ""

    def prompt(self, api: str, body: dict[str, Any]) -> Prompt:
        prompt = Prompt(scenario_text=self.scenario_text(body))
        messages: list[dict[str, Any]] = body["messages"]
        for message in messages:
            prompt.messages += 1
            texts: list[str] = []
            add_content(prompt, message.get("content"), texts)
            if message.get("role") in ("user", "tool"):
                prompt.echo_text = " ".join(texts)
        prompt.last_is_question = messages[-1].get("role") == "user"
        tools = body.get("tools")
        prompt.tool_name = first_tool_name(tools) if isinstance(tools, list) else None
        thinking = body.get("thinking")
        if api == "deepseek":
            enabled = isinstance(thinking, dict) and thinking.get("type") == "enabled"
            prompt.reasoning = "reasoner" in str(body["model"]) or enabled
        else:
            prompt.reasoning = body.get("reasoning_effort") not in (None, "none")
        limit = body.get("max_completion_tokens", body.get("max_tokens"))
        prompt.max_output = limit if type(limit) is int else None
        return prompt

    async def answer(self, call: Call) -> None:
        prompt = self.prompt(call.api, call.body)
        plan = plan_answer(
            prompt, call.scenario, call.serial, tool_id_prefix="call_", cache_writes=call.api == "openai"
        )
        if self.streaming(call.body):
            await self._stream(call, plan)
            return
        call.bill(plan.tokens, "complete")
        await call.send_json(dumps(self._unary(call, plan)))

    def _usage(self, call: Call, tokens: Tokens) -> dict[str, Any]:
        return hostile(usage_json(call.api, tokens), call.scenario.hostile_usage)

    def _unary(self, call: Call, plan: Plan) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": "".join(plan.text), "refusal": None}
        message["annotations"] = []
        if call.api == "deepseek" and plan.reasoning:
            message["reasoning_content"] = "".join(plan.reasoning)
        if plan.tool is not None:
            message["content"] = None
            function = {"name": plan.tool.name, "arguments": plan.tool.arguments}
            message["tool_calls"] = [{"id": plan.tool.id, "type": "function", "function": function}]
        body: dict[str, Any] = {
            "id": f"chatcmpl-fake{call.serial}",
            "object": "chat.completion",
            "created": call.created,
            "model": call.model,
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": plan.finish}],
        }
        if not call.scenario.no_usage:
            body["usage"] = self._usage(call, plan.tokens)
        return body

    async def _stream(self, call: Call, plan: Plan) -> None:
        head = b'data: {"id":"chatcmpl-fake%d","object":"chat.completion.chunk","created":%d,"model":%s,' % (
            call.serial,
            call.created,
            json.dumps(call.model).encode(),
        )
        head += b'"system_fingerprint":"fp_fake","choices":['

        def chunk(delta: bytes, finish: bytes = b"null") -> bytes:
            choice = b'{"index":0,"delta":%s,"logprobs":null,"finish_reason":%s}' % (delta, finish)
            return head + choice + b'],"usage":null}\n\n'

        frames = [(chunk(b'{"role":"assistant","content":""}'), False)]
        hidden = 0
        if call.api == "deepseek":
            frames += [(chunk(b'{"content":null,"reasoning_content":%s}' % dumps(w)), True) for w in plan.reasoning]
        else:
            hidden = len(plan.reasoning)  # OpenAI reasons silently but bills it
        frames += [(chunk(b'{"content":%s}' % dumps(word)), True) for word in plan.text]
        if plan.tool is not None:
            function = {"name": plan.tool.name, "arguments": ""}
            first = {"tool_calls": [{"index": 0, "id": plan.tool.id, "type": "function", "function": function}]}
            frames.append((chunk(dumps(first)), False))
            frames += [
                (chunk(dumps({"tool_calls": [{"index": 0, "function": {"arguments": part}}]})), True)
                for part in plan.tool.fragments
            ]
        tail = len(frames)
        frames.append((chunk(b"{}", dumps(plan.finish)), False))
        options = call.body.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage") is True and not call.scenario.no_usage:
            usage = dumps(self._usage(call, plan.tokens))
            frames.append((head.replace(b'"choices":[', b'"choices":[],"usage":%s}\n\n' % usage), False))
        frames.append((b"data: [DONE]\n\n", False))
        await call.open_stream()
        call.emitted = hidden
        outcome = "complete"
        try:
            outcome = await call.play(frames, tail, STREAM_ERROR)
        finally:
            output = call.emitted if outcome != "complete" or call.exchange.disconnected else plan.tokens.output
            reasoning = min(output, plan.tokens.reasoning)
            call.bill(dataclasses.replace(plan.tokens, output=output, reasoning=reasoning), outcome)
