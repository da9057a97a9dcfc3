"""Checked reads of parsed JSON values, and JSON ⇄ google.protobuf.Struct without json_format."""

from __future__ import annotations

import math
from typing import Any, NoReturn

from google.protobuf import struct_pb2

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
# Struct stores numbers as doubles: larger integers would arrive changed.
EXACT_INT_MAX = 2**53
# Each JSON level costs up to three protobuf levels (Struct, map entry, Value); upb refuses to parse a
# message deeper than 100, and a Struct sits at most four levels down (params → tools → function → parameters).
MAX_STRUCT_DEPTH = 24
# A usage count above this is not believed: it is read as 0 (see `token_count`).
MAX_TOKEN_COUNT = 10**9
# Keys that would choose the upstream or its credentials (litellm-style); a relay must never honour them.
UPSTREAM_KEYS = frozenset({"api_base", "base_url", "api_key", "api_version", "organization", "custom_llm_provider"})

_JSON_TYPE_NAMES = {
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    list: "an array",
    dict: "an object",
    type(None): "null",
}


class WireError(ValueError):
    """A JSON body that does not fit OpenAI's schema.

    `param` is the JSON path of the offending value (`messages[2].content`), or None for the body itself;
    the gateway reports both in OpenAI's error envelope.
    """

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


def join(path: str, key: str | int) -> str:
    """The JSON path of `key` below `path`: `messages[2]` + `content` → `messages[2].content`."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def type_error(value: object, expected: str, path: str) -> NoReturn:
    got = _JSON_TYPE_NAMES.get(type(value), "an unsupported value")
    raise WireError(f"Invalid type for '{path or 'body'}': expected {expected}, but got {got} instead.", path or None)


def value_error(message: str, path: str) -> NoReturn:
    raise WireError(f"Invalid value for '{path}': {message}", path or None)


def as_dict(value: object, path: str) -> dict[str, Any]:
    if type(value) is not dict:
        type_error(value, "an object", path)
    return value


def as_list(value: object, path: str) -> list[Any]:
    if type(value) is not list:
        type_error(value, "an array", path)
    return value


def as_str(value: object, path: str) -> str:
    """A string that protobuf can encode: JSON escapes can smuggle in lone surrogates, which are not UTF-8."""
    if type(value) is not str:
        type_error(value, "a string", path)
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            value_error("the string is not valid Unicode (lone surrogate).", path)
    return value


def as_bool(value: object, path: str) -> bool:
    if type(value) is not bool:
        type_error(value, "a boolean", path)
    return value


def as_int(value: object, path: str, minimum: int = 0, maximum: int = INT32_MAX) -> int:
    if type(value) is not int:
        type_error(value, "an integer", path)
    if not minimum <= value <= maximum:
        value_error(f"expected an integer from {minimum} to {maximum}, but got {value} instead.", path)
    return value


def as_number(value: object, path: str) -> float:
    if type(value) is float:
        number = value
    elif type(value) is int:
        try:
            number = float(value)
        except OverflowError:
            value_error("the number is too large.", path)
    else:
        type_error(value, "a number", path)
    if not math.isfinite(number):
        value_error("expected a finite number.", path)
    return number


def str_or_empty(value: object, path: str) -> str:
    """An optional string field of an upstream answer: null and absent read as ""."""
    return "" if value is None else as_str(value, path)


def token_count(value: object) -> int:
    """A usage count; never raises. One that is negative, not an integer or above 10^9 reads as 0, so a
    hostile upstream can neither crash nor inflate billing (which sees the zero and decides what to charge)."""
    if type(value) is int and 0 <= value <= MAX_TOKEN_COUNT:
        return value
    if type(value) is float and value.is_integer() and 0 <= value <= MAX_TOKEN_COUNT:
        return int(value)
    return 0


def refuse_upstream_key(key: str) -> None:
    if key in UPSTREAM_KEYS:
        raise WireError(f"'{key}' is not accepted: the relay chooses the upstream.", key)


def struct_from_json(struct: struct_pb2.Struct, value: object, path: str, depth: int = 0) -> None:
    """Fill `struct` (marking it present, even when empty) from a JSON object."""
    obj = as_dict(value, path)
    if depth >= MAX_STRUCT_DEPTH:
        value_error(f"nested deeper than {MAX_STRUCT_DEPTH} levels.", path)
    struct.SetInParent()
    fields = struct.fields
    for key, item in obj.items():
        _value_from_json(fields[as_str(key, path)], item, join(path, key), depth + 1)


def _value_from_json(target: struct_pb2.Value, value: object, path: str, depth: int) -> None:
    if isinstance(value, str):
        target.string_value = as_str(value, path)
    elif isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        if not -EXACT_INT_MAX <= value <= EXACT_INT_MAX:
            value_error(f"integers beyond ±2^53 cannot be relayed exactly, got {value}.", path)
        target.number_value = value
    elif isinstance(value, float):
        target.number_value = as_number(value, path)
    elif value is None:
        target.null_value = struct_pb2.NULL_VALUE
    elif isinstance(value, dict):
        struct_from_json(target.struct_value, value, path, depth)
    elif isinstance(value, list):
        if depth >= MAX_STRUCT_DEPTH:
            value_error(f"nested deeper than {MAX_STRUCT_DEPTH} levels.", path)
        target.list_value.SetInParent()
        values = target.list_value.values
        for index, item in enumerate(value):
            _value_from_json(values.add(), item, join(path, index), depth + 1)
    else:
        type_error(value, "a JSON value", path)


def struct_to_json(struct: struct_pb2.Struct) -> dict[str, Any]:
    """The JSON object of a Struct; integral numbers below 2^53 come back as ints (Struct keeps only doubles)."""
    return {key: _value_to_json(item) for key, item in struct.fields.items()}


def _value_to_json(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return value.string_value
    if kind == "number_value":
        number = value.number_value
        if number.is_integer() and -EXACT_INT_MAX <= number <= EXACT_INT_MAX:
            return int(number)
        return number
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return struct_to_json(value.struct_value)
    if kind == "list_value":
        return [_value_to_json(item) for item in value.list_value.values]
    return None


def merge_under(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """`top` over `base`, recursing where both hold an object: modelled fields win over kept extras."""
    merged = dict(base)
    for key, value in top.items():
        under = merged.get(key)
        merged[key] = merge_under(under, value) if type(under) is dict and type(value) is dict else value
    return merged
