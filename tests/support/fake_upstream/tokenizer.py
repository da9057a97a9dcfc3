"""The fake upstream's tokenizer: deterministic, and deliberately not Tollgate's estimate rule.

A prompt costs its characters // 4 plus one token per message; every generated piece (a word of the
answer, a reasoning word, a tool-argument fragment) is one output token. Tollgate cannot see this rule:
it learns it only from the usage the fake reports, which is what its calibration is tested against.
"""

from __future__ import annotations


def prompt_tokens(chars: int, messages: int) -> int:
    """Tokens of a prompt of `chars` characters of message text in `messages` messages."""
    return chars // 4 + messages


def text_tokens(text: str) -> int:
    """Tokens of one message's text (its share of `prompt_tokens`, message overhead included)."""
    return prompt_tokens(len(text), 1)
