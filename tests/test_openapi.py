"""The OpenAPI 3.1 document generated from the route table."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from openapi_spec_validator import validate

from gateway.openapi import build_openapi
from gateway.routing import RouteTable
from tests.support.protos import compile_proto


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> RouteTable:
    pb2: ModuleType = compile_proto("transcoding_test.proto", Path(tmp_path_factory.mktemp("protos")))
    return RouteTable.from_services([pb2.DESCRIPTOR.services_by_name["TranscodingTestService"]])


@pytest.fixture(scope="module")
def document(table: RouteTable) -> dict[str, Any]:
    return build_openapi(table, title="Test", version="1")


def operation(document: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    found: dict[str, Any] = document["paths"][path][method]
    return found


def test_every_route_is_an_operation(document: dict[str, Any], table: RouteTable) -> None:
    operations = [
        (path, method, op["operationId"]) for path, ops in document["paths"].items() for method, op in ops.items()
    ]
    assert len(operations) == len(table.routes)
    assert sorted(operations) == sorted(
        [
            ("/v1/messages/{message_id}", "get", "TranscodingTestService_GetMessage"),
            ("/v1/users/{user_id}/messages/{message_id}", "get", "TranscodingTestService_GetMessage2"),
            ("/v1/{name}", "get", "TranscodingTestService_GetByName"),
            ("/v1/nested/{sub.subfield}", "get", "TranscodingTestService_GetNested"),
            ("/v1/messages/{message_id}", "patch", "TranscodingTestService_UpdateMessage"),
            ("/v1/messages", "post", "TranscodingTestService_CreateMessage"),
            ("/v1/users/{user_id}/messages", "post", "TranscodingTestService_CreateMessage2"),
            ("/v1/{name_1}", "get", "TranscodingTestService_GetBook"),
            ("/v2/{name}", "get", "TranscodingTestService_GetAnything"),
            ("/v1/any/*/tail/**", "get", "TranscodingTestService_Wildcards"),
            ("/v1/messages/{message_id}:archive", "post", "TranscodingTestService_ArchiveMessage"),
            ("/v1/echo/{message_id}", "get", "TranscodingTestService_GetRequestOnly"),
            ("/v1/messages/{message_id}", "delete", "TranscodingTestService_DeleteMessage"),
            ("/v1/search", "x-search", "TranscodingTestService_Search"),
            ("/v1/streams/{message_id}", "get", "TranscodingTestService_StreamMessages"),
        ]
    )


def test_path_parameters(document: dict[str, Any]) -> None:
    [book] = [p for p in operation(document, "/v1/{name_1}", "get")["parameters"] if p["in"] == "path"]
    assert book == {
        "name": "name_1",
        "in": "path",
        "required": True,
        "description": "Field `name`, matching `shelves/*/books/**`.",
        "schema": {"type": "string"},
    }
    nested = operation(document, "/v1/nested/{sub.subfield}", "get")["parameters"][0]
    assert (nested["name"], nested["in"]) == ("sub.subfield", "path")


def test_query_parameters_exclude_path_and_body_fields(document: dict[str, Any]) -> None:
    get = [
        p["name"] for p in operation(document, "/v1/messages/{message_id}", "get")["parameters"] if p["in"] == "query"
    ]
    assert get == [
        "name",
        "user_id",
        "revision",
        "sub.subfield",
        "sub.count",
        "tags",
        "numbers",
        "color",
        "flag",
        "ratio",
        "data",
        "big",
        "message.message_id",
        "message.text",
        "wrapped",
        "at",
        "fail.code",
        "fail.message",
        "fail.reason",
        "fail.retry_delay_ms",
        "fail.after",
        "delay_ms",
        "note",
        "stream_count",
        "wait",
    ]
    patch = [p["name"] for p in operation(document, "/v1/messages/{message_id}", "patch")["parameters"]]
    assert "message.text" not in patch and "message_id" in patch and "revision" in patch
    nested = [p["name"] for p in operation(document, "/v1/nested/{sub.subfield}", "get")["parameters"]]
    assert "sub.count" in nested and nested.count("sub.subfield") == 1
    assert operation(document, "/v1/messages", "post")["parameters"] == []


def test_bodies_and_responses(document: dict[str, Any]) -> None:
    patch = operation(document, "/v1/messages/{message_id}", "patch")
    assert patch["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/tollgate.testing.v1.Message"
    }
    create = operation(document, "/v1/messages", "post")
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/tollgate.testing.v1.EchoRequest"
    }
    assert create["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/tollgate.testing.v1.EchoResponse"
    }
    assert create["responses"]["default"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/google.rpc.Status"
    }
    echo = operation(document, "/v1/echo/{message_id}", "get")
    assert echo["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/tollgate.testing.v1.EchoRequest"
    }
    stream = operation(document, "/v1/streams/{message_id}", "get")["responses"]["200"]["content"]["application/json"]
    assert stream["schema"]["properties"] == {
        "result": {"$ref": "#/components/schemas/tollgate.testing.v1.EchoResponse"},
        "error": {"$ref": "#/components/schemas/google.rpc.Status"},
    }
    assert "requestBody" not in operation(document, "/v1/messages/{message_id}", "get")


def test_message_schemas(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    request = schemas["tollgate.testing.v1.EchoRequest"]["properties"]
    assert request["revision"] == {"type": ["integer", "string"], "format": "int64"}
    assert request["big"] == {"type": ["integer", "string"], "format": "uint64"}
    assert request["delay_ms"] == {"type": "integer", "format": "int32"}
    assert request["ratio"] == {"type": "number", "format": "double"}
    assert request["flag"] == {"type": "boolean"}
    assert request["data"] == {"type": "string", "format": "byte", "contentEncoding": "base64"}
    assert request["tags"] == {"type": "array", "items": {"type": "string"}}
    assert request["labels"] == {"type": "object", "additionalProperties": {"type": "string"}}
    assert request["color"] == {"$ref": "#/components/schemas/tollgate.testing.v1.Color"}
    assert request["sub"] == {"$ref": "#/components/schemas/tollgate.testing.v1.SubMessage"}
    assert request["wrapped"] == {"type": ["integer", "null"], "format": "int32"}
    assert request["at"] == {"type": "string", "format": "date-time"}
    assert request["wait"]["type"] == "string"
    assert request["extra"] == {"type": "object", "additionalProperties": True}
    assert schemas["tollgate.testing.v1.Color"] == {
        "type": "string",
        "enum": ["COLOR_UNSPECIFIED", "COLOR_RED", "COLOR_BLUE"],
    }
    assert set(schemas["google.rpc.Status"]["properties"]) == {"code", "message", "details"}


def test_document_validates(document: dict[str, Any]) -> None:
    validate(document)
