"""Token estimates without a tokenizer: for context checks, holds, and bills when usage never arrives.

The rule: a quarter token per ASCII character, one token per other character (CJK text is about a
token per character), four tokens of overhead per message, a flat count per image. It is a rough
estimate, close for English and Chinese prose; billing uses it only when an upstream reports no usable
usage, and then scaled by what the served model's reported calls taught (calibration.py).
"""

from __future__ import annotations

import dataclasses
import json

from google.protobuf import json_format
from tollgate.v1 import chat_pb2

MESSAGE_OVERHEAD = 4
IMAGE_TOKENS = 1_000
AUDIO_OR_FILE_TOKENS = 2_000


def text_tokens(text: str) -> int:
    """Estimated tokens of a text."""
    if not text:
        return 0
    ascii_chars = len(text.encode("ascii", "ignore"))
    return (ascii_chars + 3) // 4 + (len(text) - ascii_chars)


@dataclasses.dataclass
class TextSize:
    """Characters of a text that arrives in pieces, so that it is estimated whole (no rounding per piece)."""

    ascii: int = 0
    other: int = 0

    def add(self, *texts: str) -> None:
        for text in texts:
            if text:
                ascii_chars = len(text.encode("ascii", "ignore"))
                self.ascii += ascii_chars
                self.other += len(text) - ascii_chars

    def tokens(self) -> int:
        return (self.ascii + 3) // 4 + self.other


def prompt_tokens(params: chat_pb2.ChatCompletionParams) -> int:
    """Estimated prompt tokens of a chat request: messages, their parts and tool calls, and the tools."""
    total = 0
    for message in params.messages:
        total += MESSAGE_OVERHEAD + text_tokens(message.content) + text_tokens(message.name)
        for part in message.content_parts:
            total += _part_tokens(part)
        for call in message.tool_calls:
            total += text_tokens(call.function.name) + text_tokens(call.function.arguments)
    if params.tools:
        tools = [json_format.MessageToDict(tool) for tool in params.tools]
        total += text_tokens(json.dumps(tools, separators=(",", ":")))
    return total


def _part_tokens(part: chat_pb2.ContentPart) -> int:
    kind = part.WhichOneof("part")
    if kind == "text":
        return text_tokens(part.text)
    if kind == "refusal":
        return text_tokens(part.refusal)
    if kind == "image_url":
        return IMAGE_TOKENS
    if kind in ("input_audio", "file"):
        return AUDIO_OR_FILE_TOKENS
    return text_tokens(json.dumps(json_format.MessageToDict(part.other)))
