"""`POST /v1/messages` the way Anthropic answers it (PROVIDERS.md §3)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from tests.support.fake_upstream.answer import Plan, Prompt, add_content, first_tool_name, plan_answer
from tests.support.fake_upstream.base import Call, Wire, dumps, hostile
from tests.support.fake_upstream.ledger import Tokens

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}
_NO_SAMPLING_VERSION = "2026-10-21"
SIGNATURE = "ZmFrZS1zaWduYXR1cmU="


def event(name: str, data: Any) -> bytes:
    return b"event: %s\ndata: %s\n\n" % (name.encode(), dumps(data))


STREAM_ERROR = event("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
PING = event("ping", {"type": "ping"})


def usage_json(tokens: Tokens, *, input_tokens: int | None = None, output_tokens: int | None = None) -> dict[str, Any]:
    return {
        "input_tokens": tokens.input if input_tokens is None else input_tokens,
        "cache_creation_input_tokens": tokens.cache_write,
        "cache_read_input_tokens": tokens.cache_read,
        "output_tokens": tokens.output if output_tokens is None else output_tokens,
    }


class AnthropicMessages(Wire):
    """Messages, unary and SSE with named events."""

    def api(self, body: dict[str, Any]) -> str:
        return "anthropic"

    def authorized(self, headers: dict[str, str], key: str) -> bool:
        if "x-api-key" in headers:  # the API prefers x-api-key when both are sent
            return headers["x-api-key"] == key
        return headers.get("authorization") == f"Bearer {key}"

    def error(self, api: str, status: int, message: str) -> bytes:
        kind = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return dumps({"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_fake"})

    def request_id_header(self) -> bytes:
        return b"request-id"

    def keepalive(self, api: str, stream: bool) -> bytes:
        return PING if stream else b"\n"

    def invalid(self, body: dict[str, Any], headers: dict[str, str]) -> str | None:
        version = headers.get("anthropic-version")
        if not version:
            return "anthropic-version: header is required"
        if not isinstance(body.get("model"), str):
            return "model: Field required"
        if type(body.get("max_tokens")) is not int:
            return "max_tokens: Field required"
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            return "messages: Field required"
        if version >= _NO_SAMPLING_VERSION:
            for name in ("temperature", "top_p", "top_k"):
                if name in body:
                    return f"{name}: Extra inputs are not permitted"
        return None

    def scenario_text(self, body: dict[str, Any]) -> str:
        for message in reversed(body["messages"]):
            if message.get("role") == "user":
                texts: list[str] = []
                add_content(Prompt(), message.get("content"), texts)
                return " ".join(texts)
        return ""

    def prompt(self, body: dict[str, Any]) -> Prompt:
        prompt = Prompt(scenario_text=self.scenario_text(body))
        prompt.echo_text = prompt.scenario_text
        if body.get("system"):
            prompt.messages += 1
            add_content(prompt, body["system"], [])
        messages: list[dict[str, Any]] = body["messages"]
        for message in messages:
            prompt.messages += 1
            add_content(prompt, message.get("content"), [])
        last = messages[-1]
        content = last.get("content")
        has_results = isinstance(content, list) and any(
            isinstance(block, dict) and block.get("type") == "tool_result" for block in content
        )
        prompt.last_is_question = last.get("role") == "user" and not has_results
        tools = body.get("tools")
        if isinstance(tools, list):
            prompt.tool_name = first_tool_name(tools)
            prompt.cache_control |= any(isinstance(tool, dict) and "cache_control" in tool for tool in tools)
        prompt.cache_control |= "cache_control" in body
        thinking = body.get("thinking")
        prompt.reasoning = isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")
        prompt.max_output = body["max_tokens"]
        return prompt

    async def answer(self, call: Call) -> None:
        plan = plan_answer(
            self.prompt(call.body), call.scenario, call.serial, tool_id_prefix="toolu_", cache_writes=True
        )
        if self.streaming(call.body):
            await self._stream(call, plan)
            return
        call.bill(plan.tokens, "complete")
        await call.send_json(dumps(self._unary(call, plan)))

    def _message(self, call: Call, content: list[dict[str, Any]], stop_reason: str | None) -> dict[str, Any]:
        return {
            "id": f"msg_fake{call.serial}",
            "type": "message",
            "role": "assistant",
            "model": call.model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
        }

    def _unary(self, call: Call, plan: Plan) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        if plan.reasoning:
            content.append({"type": "thinking", "thinking": "".join(plan.reasoning), "signature": SIGNATURE})
        if plan.tool is not None:
            try:
                arguments = json.loads(plan.tool.arguments)
            except ValueError:  # cut by max_tokens
                arguments = {}
            content.append({"type": "tool_use", "id": plan.tool.id, "name": plan.tool.name, "input": arguments})
        elif plan.text:
            content.append({"type": "text", "text": "".join(plan.text)})
        message = self._message(call, content, _STOP_REASONS[plan.finish])
        if not call.scenario.no_usage:
            message["usage"] = hostile(usage_json(plan.tokens), call.scenario.hostile_usage)
        return message

    def _blocks(self, plan: Plan) -> list[tuple[bytes, bool]]:
        frames: list[tuple[bytes, bool]] = []
        index = 0

        def block(start: dict[str, Any], deltas: list[dict[str, Any]], closing: list[dict[str, Any]]) -> None:
            nonlocal index
            frames.append(
                (
                    event(
                        "content_block_start", {"type": "content_block_start", "index": index, "content_block": start}
                    ),
                    False,
                )
            )
            if index == 0:
                frames.append((PING, False))
            for delta in deltas:
                data = {"type": "content_block_delta", "index": index, "delta": delta}
                frames.append((event("content_block_delta", data), delta not in closing))
            frames.append((event("content_block_stop", {"type": "content_block_stop", "index": index}), False))
            index += 1

        if plan.reasoning:
            signature = {"type": "signature_delta", "signature": SIGNATURE}
            thoughts: list[dict[str, Any]] = [{"type": "thinking_delta", "thinking": w} for w in plan.reasoning]
            block({"type": "thinking", "thinking": ""}, [*thoughts, signature], [signature])
        if plan.tool is not None:
            start = {"type": "tool_use", "id": plan.tool.id, "name": plan.tool.name, "input": {}}
            block(start, [{"type": "input_json_delta", "partial_json": f} for f in plan.tool.fragments], [])
        elif plan.text:
            block({"type": "text", "text": ""}, [{"type": "text_delta", "text": w} for w in plan.text], [])
        return frames

    async def _stream(self, call: Call, plan: Plan) -> None:
        scenario = call.scenario
        tokens = plan.tokens
        started = min(1, tokens.output)  # message_start reports 1 output token, as the real API does
        message = self._message(call, [], None)
        if not scenario.no_usage:
            start_input = 0 if scenario.zero_input_in_start else None
            usage = usage_json(tokens, input_tokens=start_input, output_tokens=started)
            message["usage"] = hostile(usage, scenario.hostile_usage)
        frames = [(event("message_start", {"type": "message_start", "message": message}), False)]
        frames += self._blocks(plan)
        pieces = [i for i, (_, piece) in enumerate(frames) if piece]
        # The tail starts at the content_block_stop closing the last piece's block (a signature_delta counts too).
        tail = pieces[-1] + 1 if pieces else len(frames)
        if pieces and frames[tail][0].startswith(b"event: content_block_delta"):
            tail += 1
        delta: dict[str, Any] = {
            "type": "message_delta",
            "delta": {"stop_reason": _STOP_REASONS[plan.finish], "stop_sequence": None},
        }
        if not scenario.no_usage:
            delta["usage"] = hostile(usage_json(tokens), scenario.hostile_usage)
        frames += [(event("message_delta", delta), False), (event("message_stop", {"type": "message_stop"}), False)]
        await call.open_stream()
        outcome = "complete"
        try:
            outcome = await call.play(frames, tail, STREAM_ERROR)
        finally:
            output = tokens.output
            if outcome != "complete" or call.exchange.disconnected:
                output = max(call.emitted, started)
            reasoning = min(output, tokens.reasoning)
            call.bill(dataclasses.replace(tokens, output=output, reasoning=reasoning), outcome)
