"""An OpenAPI 3.1 document generated from the route table and the message descriptors."""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from gateway.pattern import PathTemplate, SegmentKind
from gateway.routing import Route, RouteTable

STATUS_REF = {"$ref": "#/components/schemas/google.rpc.Status"}
_INT64 = {"type": ["integer", "string"], "format": "int64"}
_FD = FieldDescriptor
_SCALARS: dict[int, dict[str, Any]] = {
    _FD.TYPE_DOUBLE: {"type": "number", "format": "double"},
    _FD.TYPE_FLOAT: {"type": "number", "format": "float"},
    _FD.TYPE_INT64: _INT64,
    _FD.TYPE_SINT64: _INT64,
    _FD.TYPE_SFIXED64: _INT64,
    _FD.TYPE_UINT64: {"type": ["integer", "string"], "format": "uint64"},
    _FD.TYPE_FIXED64: {"type": ["integer", "string"], "format": "uint64"},
    _FD.TYPE_INT32: {"type": "integer", "format": "int32"},
    _FD.TYPE_SINT32: {"type": "integer", "format": "int32"},
    _FD.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    _FD.TYPE_UINT32: {"type": "integer", "format": "uint32"},
    _FD.TYPE_FIXED32: {"type": "integer", "format": "uint32"},
    _FD.TYPE_BOOL: {"type": "boolean"},
    _FD.TYPE_STRING: {"type": "string"},
    _FD.TYPE_BYTES: {"type": "string", "format": "byte", "contentEncoding": "base64"},
}
_WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array", "items": {}},
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?s$"},
    "google.protobuf.FieldMask": {"type": "string"},
    "google.protobuf.Empty": {"type": "object"},
    "google.protobuf.Any": {
        "type": "object",
        "properties": {"@type": {"type": "string"}},
        "required": ["@type"],
        "additionalProperties": True,
    },
}
_WRAPPED = {
    "Double": _FD.TYPE_DOUBLE,
    "Float": _FD.TYPE_FLOAT,
    "Int64": _FD.TYPE_INT64,
    "UInt64": _FD.TYPE_UINT64,
    "Int32": _FD.TYPE_INT32,
    "UInt32": _FD.TYPE_UINT32,
    "Bool": _FD.TYPE_BOOL,
    "String": _FD.TYPE_STRING,
    "Bytes": _FD.TYPE_BYTES,
}
for _name, _type in _WRAPPED.items():
    _scalar = _SCALARS[_type]
    _types = _scalar["type"] if isinstance(_scalar["type"], list) else [_scalar["type"]]
    _WELL_KNOWN[f"google.protobuf.{_name}Value"] = {**_scalar, "type": [*_types, "null"]}
_STATUS_SCHEMA = {
    "type": "object",
    "properties": {
        "code": {"type": "integer", "format": "int32"},
        "message": {"type": "string"},
        "details": {"type": "array", "items": _WELL_KNOWN["google.protobuf.Any"]},
    },
}
_OPENAPI_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
_MAX_QUERY_DEPTH = 4
# Message types the codec accepts as one query parameter.
_QUERY_MESSAGES = frozenset(
    {"google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.FieldMask"}
    | {f"google.protobuf.{name}Value" for name in _WRAPPED}
)


def build_openapi(table: RouteTable, *, title: str = "Tollgate", version: str = "v1") -> dict[str, Any]:
    """The document for every route of the table.

    Path variables render as `{field}`, a colliding one as `{field_1}` like protoc-gen-openapiv2;
    a custom method kind OpenAPI has no slot for (e.g. SEARCH) goes in an `x-<kind>` path item extension.
    """
    schemas = _Schemas()
    paths: dict[str, dict[str, Any]] = {}
    owners: dict[str, str] = {}
    seen: dict[str, int] = {}
    for route in table.routes:
        path, names = _openapi_path(route.template, owners)
        method = route.http_method.lower()
        key = method if method in _OPENAPI_METHODS else f"x-{method}"
        # Additional bindings get Method2, Method3… as in protoc-gen-openapiv2: operation ids are unique.
        seen[route.operation_id] = seen.get(route.operation_id, 0) + 1
        suffix = str(seen[route.operation_id]) if seen[route.operation_id] > 1 else ""
        paths.setdefault(path, {})[key] = {
            "operationId": route.operation_id + suffix,
            **_operation(route, names, schemas),
        }
    schemas.found["google.rpc.Status"] = _STATUS_SCHEMA
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {"schemas": dict(sorted(schemas.found.items()))},
    }


def _openapi_path(template: PathTemplate, owners: dict[str, str]) -> tuple[str, dict[str, str]]:
    """Render a template, suffixing variable names while another template already owns the result."""
    for attempt in range(100):
        names = {v.field_path: v.field_path + (f"_{attempt}" if attempt else "") for v in template.variables}
        path = _render(template, names)
        if owners.setdefault(path, template.source) == template.source:
            return path, names
    raise ValueError(f"cannot render {template} as an OpenAPI path")


def _render(template: PathTemplate, names: dict[str, str]) -> str:
    starts = {variable.start: variable for variable in template.variables}
    parts: list[str] = []
    index = 0
    while index < len(template.segments):
        variable = starts.get(index)
        if variable is not None:
            parts.append("{" + names[variable.field_path] + "}")
            index = variable.end
            continue
        segment = template.segments[index]
        parts.append(segment.literal if segment.kind is SegmentKind.LITERAL else "*" * segment.kind)
        index += 1
    return "/" + "/".join(parts) + (f":{template.verb}" if template.verb else "")


def _operation(route: Route, names: dict[str, str], schemas: _Schemas) -> dict[str, Any]:
    request = route.method.input_type
    parameters = [_path_parameter(route, variable.field_path, names, schemas) for variable in route.template.variables]
    if route.body != "*":
        bound = [*names, route.body] if route.body else list(names)
        parameters += _query_parameters(request, "", bound, schemas, 0)
    operation: dict[str, Any] = {
        "tags": [route.method.containing_service.name],
        "parameters": parameters,
        "responses": {
            "200": {
                "description": "A successful response.",
                "content": {"application/json": _response(route, schemas)},
            },
            "default": {
                "description": "An error (google.rpc.Status).",
                "content": {"application/json": {"schema": STATUS_REF}},
            },
        },
    }
    if route.body:
        body = schemas.message(request) if route.body == "*" else schemas.field(request.fields_by_name[route.body])
        operation["requestBody"] = {"content": {"application/json": {"schema": body}}}
    return operation


def _response(route: Route, schemas: _Schemas) -> dict[str, Any]:
    output = route.method.output_type
    schema = (
        schemas.field(output.fields_by_name[route.response_body]) if route.response_body else schemas.message(output)
    )
    if not route.server_streaming:
        return {"schema": schema}
    line = {"type": "object", "properties": {"result": schema, "error": STATUS_REF}}
    return {"schema": line, "x-stream": "newline-delimited JSON, one object per message"}


def _path_parameter(route: Route, field_path: str, names: dict[str, str], schemas: _Schemas) -> dict[str, Any]:
    descriptor = route.method.input_type
    *parents, leaf = field_path.split(".")
    for name in parents:
        parent = descriptor.fields_by_name[name].message_type
        assert parent is not None  # checked when the route table was built
        descriptor = parent
    variable = next(v for v in route.template.variables if v.field_path == field_path)
    pattern = "/".join(
        segment.literal if segment.kind is SegmentKind.LITERAL else "*" * segment.kind
        for segment in route.template.segments[variable.start : variable.end]
    )
    return {
        "name": names[field_path],
        "in": "path",
        "required": True,
        "description": f"Field `{field_path}`, matching `{pattern}`.",
        "schema": schemas.field(descriptor.fields_by_name[leaf]),
    }


def _query_parameters(
    message: Descriptor, prefix: str, bound: list[str], schemas: _Schemas, depth: int
) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = []
    for field in message.fields:
        name = prefix + field.name
        if any(name == other or name.startswith(other + ".") for other in bound):
            continue
        nested = field.message_type
        if nested is None or (nested.full_name in _QUERY_MESSAGES and not field.is_repeated):
            parameters.append({"name": name, "in": "query", "required": False, "schema": schemas.field(field)})
        elif not field.is_repeated and nested.full_name not in _WELL_KNOWN and depth < _MAX_QUERY_DEPTH:
            parameters += _query_parameters(nested, name + ".", bound, schemas, depth + 1)
    return parameters


class _Schemas:
    """Collects `components.schemas` while fields are described."""

    def __init__(self) -> None:
        self.found: dict[str, Any] = {}

    def message(self, descriptor: Descriptor) -> dict[str, Any]:
        if descriptor.full_name in _WELL_KNOWN:
            return dict(_WELL_KNOWN[descriptor.full_name])
        if descriptor.full_name not in self.found:
            self.found[descriptor.full_name] = {}  # placeholder first: messages may be recursive
            properties = {field.name: self.field(field) for field in descriptor.fields}
            self.found[descriptor.full_name] = {"type": "object", "properties": properties}
        return {"$ref": f"#/components/schemas/{descriptor.full_name}"}

    def field(self, field: FieldDescriptor) -> dict[str, Any]:
        nested = field.message_type
        if nested is not None and nested.GetOptions().map_entry:
            return {"type": "object", "additionalProperties": self._single(nested.fields_by_name["value"])}
        single = self._single(field)
        return {"type": "array", "items": single} if field.is_repeated else single

    def _single(self, field: FieldDescriptor) -> dict[str, Any]:
        if field.message_type is not None:
            return self.message(field.message_type)
        if field.enum_type is not None:
            return self._enum(field.enum_type)
        return dict(_SCALARS[field.type])

    def _enum(self, descriptor: EnumDescriptor) -> dict[str, Any]:
        if descriptor.full_name not in self.found:
            self.found[descriptor.full_name] = {"type": "string", "enum": [value.name for value in descriptor.values]}
        return {"$ref": f"#/components/schemas/{descriptor.full_name}"}
