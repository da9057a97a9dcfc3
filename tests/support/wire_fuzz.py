"""Hostile JSON for the OpenAI wire codec: valid bodies with one value replaced by garbage."""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable
from typing import Any

from google.protobuf import message as message_lib

from gateway.openai.wire import WireError

GARBAGE: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    2**31,
    2**64,
    -(2**70),
    1.5,
    math.nan,
    math.inf,
    -math.inf,
    10**400,
    "",
    "x",
    "\ud800",
    "user",
    "function",
    [],
    {},
    [None],
    [1, "a", {}],
    {"type": "text"},
    {"type": 5},
    {"role": "user"},
    {"\ud800": 1},
    {1: 2},
    (1, 2),
    {1, 2},
    b"bytes",
    object(),
]


def deep_garbage(rng: random.Random) -> Any:
    value: Any = rng.choice(GARBAGE)
    for _ in range(rng.randrange(0, 80)):
        value = [value] if rng.random() < 0.5 else {"k": value}
    return value


def mutations(body: Any, rng: random.Random) -> Any:
    """`body` with one value somewhere (an item, or the whole thing) replaced by garbage, maybe a key added."""
    mutated = copy.deepcopy(body)
    slots: list[tuple[Any, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, item in node.items():
                slots.append((node, key))
                walk(item)
        elif isinstance(node, list):
            for index, item in enumerate(node):
                slots.append((node, index))
                walk(item)

    walk(mutated)
    if not slots or rng.random() < 0.05:
        return deep_garbage(rng)
    container, key = rng.choice(slots)
    container[key] = deep_garbage(rng) if rng.random() < 0.3 else rng.choice(GARBAGE)
    if isinstance(container, dict) and rng.random() < 0.2:
        container[rng.choice(["role", "type", "content", "index", "function", "weird", 1, "\ud800"])] = rng.choice(
            GARBAGE
        )
    return mutated


def decode_mutations(
    decode: Callable[[Any], message_lib.Message],
    encode: Callable[[Any], object],
    bodies: list[Any],
    *,
    rounds: int,
    seed: int,
) -> int:
    """Decode many mutations; whatever decodes must serialise, parse back and encode to JSON again.
    Returns how many were accepted (a fuzzer that accepts nothing tests nothing)."""
    rng = random.Random(seed)
    accepted = 0
    for round_number in range(rounds):
        mutated = mutations(bodies[round_number % len(bodies)], rng)
        try:
            message = decode(mutated)
        except WireError:
            continue
        encode(type(message).FromString(message.SerializeToString()))
        accepted += 1
    return accepted
