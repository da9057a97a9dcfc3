"""What the fake upstream answers: prompt facts read from a request, and the deterministic answer plan."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from typing import Any

from tests.support.fake_upstream.ledger import Tokens
from tests.support.fake_upstream.scenario import Scenario
from tests.support.fake_upstream.tokenizer import prompt_tokens

TOOL_TRIGGER = "call a tool"
_REASONING_WORDS = ("Let", "me", "think", "about", "this.")


@dataclasses.dataclass
class Prompt:
    """The facts of a chat request the answer depends on, whatever the wire format."""

    chars: int = 0
    """Characters of all message text (system included)."""
    messages: int = 0
    """Messages, a top-level Anthropic `system` counting as one."""
    images: int = 0
    """Image parts anywhere in the request."""
    scenario_text: str = ""
    """Text of the last user message: scenario markers and the tool trigger are read here."""
    echo_text: str = ""
    """Text the answer echoes: the last user (or OpenAI tool) message."""
    tool_name: str | None = None
    """The first declared tool, when the request declares tools."""
    last_is_question: bool = False
    """The last message is a user turn that is not a tool result."""
    cache_control: bool = False
    """Some block or tool carries `cache_control` (Anthropic)."""
    reasoning: bool = False
    """The request asks for reasoning / thinking."""
    max_output: int | None = None
    """max_tokens / max_completion_tokens."""

    @property
    def tokens(self) -> int:
        return prompt_tokens(self.chars, self.messages)

    @property
    def wants_tool(self) -> bool:
        return self.tool_name is not None and self.last_is_question and TOOL_TRIGGER in self.scenario_text


def add_content(prompt: Prompt, content: Any, texts: list[str]) -> None:
    """Adds the text and images of an OpenAI or Anthropic `content` value (str or list of parts/blocks)."""
    if isinstance(content, str):
        prompt.chars += len(content)
        texts.append(content)
        return
    if not isinstance(content, list):
        return
    for part in content:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text" and isinstance(part.get("text"), str):
            prompt.chars += len(part["text"])
            texts.append(part["text"])
        elif kind in ("image_url", "image"):
            prompt.images += 1
        elif kind == "tool_result":
            add_content(prompt, part.get("content"), texts)
        if "cache_control" in part:
            prompt.cache_control = True


@dataclasses.dataclass(frozen=True)
class ToolCall:
    """A tool call the answer makes, its arguments cut into streamed fragments."""

    id: str
    name: str
    fragments: tuple[str, ...]

    @property
    def arguments(self) -> str:
        return "".join(self.fragments)


@dataclasses.dataclass(frozen=True)
class Plan:
    """A whole answer: reasoning words, then text words or one tool call; `tokens` is its full usage."""

    reasoning: tuple[str, ...]
    """Streamed reasoning deltas (each a word, later ones with a leading space)."""
    text: tuple[str, ...]
    """Streamed text deltas (each a word, later ones with a leading space)."""
    tool: ToolCall | None
    finish: str
    """stop | length | tool_calls (OpenAI words; the Anthropic writer maps them)."""
    tokens: Tokens

    @property
    def pieces(self) -> int:
        return len(self.reasoning) + len(self.text) + (len(self.tool.fragments) if self.tool else 0)


def _words(base: list[str], count: int) -> tuple[str, ...]:
    return tuple(base[i % len(base)] if i == 0 else " " + base[i % len(base)] for i in range(count))


def _fragments(arguments: str, count: int) -> tuple[str, ...]:
    count = max(1, min(count, len(arguments)))
    step, extra = divmod(len(arguments), count)
    cuts, start = [], 0
    for i in range(count):
        end = start + step + (1 if i < extra else 0)
        cuts.append(arguments[start:end])
        start = end
    return tuple(cuts)


def prompt_usage(prompt_tokens: int, scenario: Scenario, cache_control: bool, *, cache_writes: bool) -> Tokens:
    """Prompt tokens split into uncached, cache-read and cache-write parts (see the package docstring)."""
    read = scenario.cache_read if scenario.cache_read is not None else (prompt_tokens // 2 if cache_control else 0)
    write = scenario.cache_write if scenario.cache_write is not None else (prompt_tokens // 4 if cache_control else 0)
    if not cache_writes:
        write = 0
    total = max(prompt_tokens, read + write)
    return Tokens(input=total - read - write, cache_read=read, cache_write=write)


def plan_answer(prompt: Prompt, scenario: Scenario, serial: int, *, tool_id_prefix: str, cache_writes: bool) -> Plan:
    """The deterministic answer to `prompt`, capped by its max output tokens."""
    budget = prompt.max_output if prompt.max_output is not None else 1 << 62
    reasoning_count = min(scenario.reasoning if prompt.reasoning else 0, budget)
    budget -= reasoning_count
    reasoning = _words(list(_REASONING_WORDS), reasoning_count)
    echo = prompt.echo_text[:40]
    tool = None
    text: tuple[str, ...] = ()
    if prompt.wants_tool and prompt.tool_name is not None:
        fragments = _fragments(json.dumps({"query": echo}), scenario.chunks)
        wanted = len(fragments)
        fragments = fragments[: max(0, budget)]
        tool = ToolCall(f"{tool_id_prefix}{serial}", prompt.tool_name, fragments) if fragments else None
        finish = "tool_calls" if len(fragments) == wanted else "length"
    else:
        head = f"Echo(images={prompt.images}):" if prompt.images else "Echo:"
        text = _words([head, *echo.split()], min(scenario.chunks, budget))
        finish = "stop" if len(text) == scenario.chunks else "length"
    output = len(reasoning) + len(text) + (len(tool.fragments) if tool else 0)
    usage = prompt_usage(prompt.tokens, scenario, prompt.cache_control, cache_writes=cache_writes)
    tokens = dataclasses.replace(usage, output=output, reasoning=len(reasoning))
    return Plan(reasoning, text, tool, finish, tokens)


def first_tool_name(tools: Iterable[Any]) -> str | None:
    """The name of the first tool in an OpenAI or Anthropic `tools` list."""
    for tool in tools:
        if isinstance(tool, dict):
            inner = tool.get("function") or tool.get("custom") or tool
            if isinstance(inner, dict) and isinstance(inner.get("name"), str):
                return str(inner["name"])
    return None
