"""Request decoding and response encoding without the network (the HTTP path is in test_transcoder)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from gateway.codec import CodecError, decode_request, encode_response, message_to_json
from gateway.routing import Route, RouteTable
from tests.support.protos import compile_proto


@pytest.fixture(scope="module")
def pb2(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    return compile_proto("transcoding_test.proto", Path(tmp_path_factory.mktemp("protos")))


@pytest.fixture(scope="module")
def routes(pb2: ModuleType) -> dict[str, Route]:
    table = RouteTable.from_services([pb2.DESCRIPTOR.services_by_name["TranscodingTestService"]])
    return {route.method.name: route for route in reversed(table.routes)}


def decoded(route: Route, query: str = "", body: bytes = b"", **path: str) -> dict[str, Any]:
    return message_to_json(decode_request(route, path, query, body))


def test_query_accepts_json_names_and_base64_variants(routes: dict[str, Route]) -> None:
    request = decoded(routes["GetMessage"], "userId=u&data=-_8&ratio=Infinity&big=0", message_id="m")
    assert (request["user_id"], request["data"], request["ratio"], request["big"]) == ("u", "+/8=", "Infinity", 0)


@pytest.mark.parametrize("query", ["ratio=1e999", "numbers=x", "at=yesterday", "wrapped=1.5", "note=%FF"])
def test_invalid_query_values(routes: dict[str, Route], query: str) -> None:
    with pytest.raises(CodecError):
        decode_request(routes["GetMessage"], {}, query, b"")


def test_enum_by_number_and_blank_values(routes: dict[str, Route]) -> None:
    request = decoded(routes["GetMessage"], "color=2&name=&tags=")
    assert (request["color"], request["name"], request["tags"]) == ("COLOR_BLUE", "", [""])


def test_scalar_body_field_and_path_override(routes: dict[str, Route]) -> None:
    request = decoded(routes["UpdateMessage"], "", b'{"message_id": "body", "text": "t"}', message_id="path")
    assert request["message"] == {"message_id": "body", "text": "t"}
    assert request["message_id"] == "path"


def test_response_body_of_an_unset_message_is_an_empty_object(routes: dict[str, Route], pb2: ModuleType) -> None:
    assert encode_response(routes["GetRequestOnly"], pb2.EchoResponse()) == {}
    message_route = routes["GetMessage"]
    assert encode_response(message_route, pb2.EchoResponse(sequence=2**53 + 1))["sequence"] == str(2**53 + 1)


def test_deep_json_is_rejected(routes: dict[str, Route]) -> None:
    body = b'{"extra": ' + b'{"a": ' * 100 + b"1" + b"}" * 101
    with pytest.raises(CodecError):
        decode_request(routes["CreateMessage"], {}, "", body)
