"""Request and response bodies: path, query and JSON into a request message; proto3 JSON out."""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping
from typing import Any, cast
from urllib.parse import parse_qsl

from google.protobuf import json_format
from google.protobuf import message as message_lib
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from gateway.routing import Route
from server import wire_json

_INT_RANGES = {
    FieldDescriptor.CPPTYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.CPPTYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.CPPTYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.CPPTYPE_UINT64: (0, 2**64 - 1),
}
_NON_FINITE = frozenset({"inf", "infinity", "nan"})
_TRUE, _FALSE = frozenset({"true", "t", "1"}), frozenset({"false", "f", "0"})
_WRAPPERS = frozenset(
    f"google.protobuf.{name}Value"
    for name in ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes")
)
_JSON_STRING_TYPES = frozenset(
    {"google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.FieldMask"},
)


class CodecError(ValueError):
    """A request that cannot be decoded: invalid JSON or an invalid field value (INVALID_ARGUMENT)."""


def decode_request(route: Route, path_params: Mapping[str, str], query_string: str, body: bytes) -> message_lib.Message:
    """Build the request message. Path variables win over the body, the body over the query string."""
    request = route.request_class()
    document = _merge_body(request, route.body, body) if route.body else None
    if route.body != "*":
        bound = [name.split(".") for name in path_params]
        if route.body:
            bound.append([route.body])
        _merge_query(request, query_string, bound)
    for field_path, text in path_params.items():
        _set_path(request, field_path.split("."), [text])
    if route.http_method == "PATCH" and route.body not in ("", "*") and isinstance(document, dict):
        _infer_update_mask(request, route.body, document)
    return request


def _infer_update_mask(request: message_lib.Message, body_field: str, document: dict[str, Any]) -> None:
    """grpc-gateway's PATCH rule: without an update_mask, the body's own fields are the ones to update."""
    mask_field = request.DESCRIPTOR.fields_by_name.get("update_mask")
    if mask_field is None or mask_field.message_type is None:
        return
    if mask_field.message_type.full_name != "google.protobuf.FieldMask" or request.HasField("update_mask"):
        return
    target = cast(Descriptor, request.DESCRIPTOR.fields_by_name[body_field].message_type)
    paths = [field.name for key in document if (field := _body_field(target, key)) is not None]
    request.update_mask.paths.extend(paths)  # type: ignore[attr-defined]


def _body_field(descriptor: Descriptor, key: str) -> FieldDescriptor | None:
    return descriptor.fields_by_name.get(key) or _by_json_name(descriptor, key)


def encode_response(route: Route, response: message_lib.Message) -> Any:
    """The JSON value of a response (or of its `response_body` field), ready for `wire_json.dumps`."""
    document = message_to_json(response)
    if not route.response_body:
        return document
    field = response.DESCRIPTOR.fields_by_name[route.response_body]
    if route.response_body in document:
        return document[route.response_body]
    return {} if field.message_type is not None and not field.is_repeated else None


def message_to_json(message: message_lib.Message) -> dict[str, Any]:
    """proto3 JSON with snake_case names, fields without presence printed, int64 numeric below 2**53."""
    return json_format.MessageToDict(
        message,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
        unquote_int64_if_possible=True,
    )


def _merge_body(request: message_lib.Message, body_field: str, body: bytes) -> Any:
    """Parses the JSON body into the request (or its body field); returns the parsed document."""
    if not body.strip():
        return None
    try:
        document = wire_json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise CodecError(f"invalid JSON body: {exc}") from exc
    if body_field == "*" and not isinstance(document, dict):
        raise CodecError("the JSON body must be an object")
    try:
        json_format.ParseDict(
            document if body_field == "*" else {body_field: document},
            request,
            ignore_unknown_fields=True,
            max_recursion_depth=64,
        )
    except (json_format.ParseError, RecursionError) as exc:
        raise CodecError(f"invalid request body: {exc}") from exc
    return document


def _merge_query(request: message_lib.Message, query_string: str, bound: list[list[str]]) -> None:
    grouped: dict[str, list[str]] = {}
    try:
        pairs = parse_qsl(query_string, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError as exc:
        raise CodecError("the query string is not valid UTF-8") from exc
    for key, value in pairs:
        grouped.setdefault(key, []).append(value)
    for key, values in grouped.items():
        names = _field_names(cast(Descriptor, request.DESCRIPTOR), key.split("."))
        if names is None or any(_overlaps(names, other) for other in bound):
            continue
        _set_path(request, names, values)


def _field_names(descriptor: Descriptor, parts: list[str]) -> list[str] | None:
    """Resolve a dotted query key (proto or JSON names) to proto field names; None when unknown."""
    names = []
    for index, part in enumerate(parts):
        field = descriptor.fields_by_name.get(part) or _by_json_name(descriptor, part)
        if field is None:
            return None
        names.append(field.name)
        if index < len(parts) - 1:
            if field.message_type is None or field.is_repeated or field.message_type.full_name in _WRAPPERS:
                return None
            descriptor = field.message_type
    return names


def _by_json_name(descriptor: Descriptor, name: str) -> FieldDescriptor | None:
    return next((field for field in descriptor.fields if field.json_name == name), None)


def _overlaps(a: list[str], b: list[str]) -> bool:
    shorter = min(len(a), len(b))
    return a[:shorter] == b[:shorter]


def _set_path(request: message_lib.Message, names: list[str], values: list[str]) -> None:
    target = request
    for name in names[:-1]:
        target = getattr(target, name)
    field = cast(FieldDescriptor, target.DESCRIPTOR.fields_by_name[names[-1]])
    where = ".".join(names)
    if field.is_repeated:
        if field.message_type is not None:
            return  # maps and repeated messages cannot be written as query parameters
        getattr(target, field.name).extend(_scalar(field, value, where) for value in values)
        return
    if len(values) != 1:
        raise CodecError(f"too many values for field {where!r}")
    if field.message_type is None:
        setattr(target, field.name, _scalar(field, values[0], where))
        return
    _set_message(getattr(target, field.name), values[0], where)


def _set_message(target: message_lib.Message, text: str, where: str) -> None:
    full_name = target.DESCRIPTOR.full_name
    if full_name in _WRAPPERS:
        value_field = cast(FieldDescriptor, target.DESCRIPTOR.fields_by_name["value"])
        setattr(target, "value", _scalar(value_field, text, where))  # noqa: B010 (wrapper classes are dynamic)
    elif full_name in _JSON_STRING_TYPES:
        try:
            json_format.Parse(json.dumps(text), target)
        except json_format.ParseError as exc:
            raise CodecError(f"invalid value for field {where!r}: {exc}") from exc
    else:
        raise CodecError(f"field {where!r} cannot be set from a query parameter")


def _scalar(field: FieldDescriptor, text: str, where: str) -> Any:
    try:
        return _convert(field, text)
    except (ValueError, binascii.Error) as exc:
        raise CodecError(f"invalid value for field {where!r}: {text!r}") from exc


def _convert(field: FieldDescriptor, text: str) -> Any:
    cpp_type = field.cpp_type
    if cpp_type == FieldDescriptor.CPPTYPE_STRING:
        if field.type == FieldDescriptor.TYPE_BYTES:
            padded = text + "=" * (-len(text) % 4)
            return (
                base64.urlsafe_b64decode(padded)
                if "-" in text or "_" in text
                else base64.b64decode(padded, validate=True)
            )
        return text
    if cpp_type == FieldDescriptor.CPPTYPE_BOOL:
        lowered = text.lower()
        if lowered in _TRUE | _FALSE:
            return lowered in _TRUE
        raise ValueError(text)
    if cpp_type in _INT_RANGES:
        number = int(text)
        low, high = _INT_RANGES[cpp_type]
        if not low <= number <= high:
            raise ValueError(text)
        return number
    if cpp_type in (FieldDescriptor.CPPTYPE_DOUBLE, FieldDescriptor.CPPTYPE_FLOAT):
        real = float(text)
        if not math.isfinite(real) and text.lower().lstrip("+-") not in _NON_FINITE:
            raise ValueError(text)  # an overflow such as 1e999, not an explicit infinity
        return real
    if cpp_type == FieldDescriptor.CPPTYPE_ENUM and field.enum_type is not None:
        value = field.enum_type.values_by_name.get(text)
        if value is not None:
            return value.number
        number = int(text)
        if number not in field.enum_type.values_by_number:
            raise ValueError(text)
        return number
    raise ValueError(f"unsupported field type {field.type}")
