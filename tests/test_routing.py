"""The route table: bindings read from descriptors, start-up validation and match precedence."""

from __future__ import annotations

import itertools
from pathlib import Path
from types import ModuleType

import pytest
from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import ServiceDescriptor

from gateway.routing import RouteError, RouteTable
from tests.support.protos import compile_proto

_FIELD = descriptor_pb2.FieldDescriptorProto
_names = itertools.count()
SERVICE = "/tollgate.testing.v1.TranscodingTestService/"


@pytest.fixture(scope="module")
def pb2(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    return compile_proto("transcoding_test.proto", Path(tmp_path_factory.mktemp("protos")))


@pytest.fixture(scope="module")
def table(pb2: ModuleType) -> RouteTable:
    return RouteTable.from_services([pb2.DESCRIPTOR.services_by_name["TranscodingTestService"]])


def service(*rules: http_pb2.HttpRule, client_streaming: bool = False) -> ServiceDescriptor:
    """A one-file pool: message Req {id, tags, sub{name}, labels}, service Svc with one method per rule."""
    file = descriptor_pb2.FileDescriptorProto(name=f"bad{next(_names)}.proto", package="bad.v1", syntax="proto3")
    sub = file.message_type.add(name="Sub")
    sub.field.add(name="name", number=1, type=_FIELD.TYPE_STRING, label=_FIELD.LABEL_OPTIONAL)
    request = file.message_type.add(name="Req")
    request.field.add(name="id", number=1, type=_FIELD.TYPE_STRING, label=_FIELD.LABEL_OPTIONAL)
    request.field.add(name="tags", number=2, type=_FIELD.TYPE_STRING, label=_FIELD.LABEL_REPEATED)
    request.field.add(
        name="sub", number=3, type=_FIELD.TYPE_MESSAGE, type_name=".bad.v1.Sub", label=_FIELD.LABEL_OPTIONAL
    )
    svc = file.service.add(name="Svc")
    for index, rule in enumerate(rules):
        method = svc.method.add(
            name=f"M{index}", input_type=".bad.v1.Req", output_type=".bad.v1.Req", client_streaming=client_streaming
        )
        method.options.Extensions[annotations_pb2.http].CopyFrom(rule)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return pool.FindServiceByName("bad.v1.Svc")


def test_routes_in_declaration_order(table: RouteTable) -> None:
    assert [(r.http_method, r.template.source, r.grpc_method.removeprefix(SERVICE)) for r in table.routes] == [
        ("GET", "/v1/messages/{message_id}", "GetMessage"),
        ("GET", "/v1/users/{user_id}/messages/{message_id}", "GetMessage"),
        ("GET", "/v1/{name=topics/*}", "GetByName"),
        ("GET", "/v1/nested/{sub.subfield}", "GetNested"),
        ("PATCH", "/v1/messages/{message_id}", "UpdateMessage"),
        ("POST", "/v1/messages", "CreateMessage"),
        ("POST", "/v1/users/{user_id}/messages", "CreateMessage"),
        ("GET", "/v1/{name=shelves/*/books/**}", "GetBook"),
        ("GET", "/v2/{name=**}", "GetAnything"),
        ("GET", "/v1/any/*/tail/**", "Wildcards"),
        ("POST", "/v1/messages/{message_id}:archive", "ArchiveMessage"),
        ("GET", "/v1/echo/{message_id}", "GetRequestOnly"),
        ("DELETE", "/v1/messages/{message_id}", "DeleteMessage"),
        ("SEARCH", "/v1/search", "Search"),
        ("GET", "/v1/streams/{message_id}", "StreamMessages"),
    ]


def test_route_fields(table: RouteTable, pb2: ModuleType) -> None:
    by_method = {route.grpc_method.removeprefix(SERVICE): route for route in table.routes}
    update, echo, stream = by_method["UpdateMessage"], by_method["GetRequestOnly"], by_method["StreamMessages"]
    assert (update.body, update.response_body, update.server_streaming) == ("message", "", False)
    assert (echo.body, echo.response_body) == ("", "request")
    assert stream.server_streaming
    assert update.request_class().DESCRIPTOR.full_name == "tollgate.testing.v1.EchoRequest"
    assert update.response_class().DESCRIPTOR.full_name == "tollgate.testing.v1.EchoResponse"
    assert update.operation_id == "TranscodingTestService_UpdateMessage"


@pytest.mark.parametrize(
    ("method", "path", "grpc_method", "params"),
    [
        ("GET", "/v1/messages/1", "GetMessage", {"message_id": "1"}),
        ("get", "/v1/messages/1", "GetMessage", {"message_id": "1"}),
        ("PATCH", "/v1/messages/1", "UpdateMessage", {"message_id": "1"}),
        ("POST", "/v1/messages/1:archive", "ArchiveMessage", {"message_id": "1"}),
        ("GET", "/v1/users/u/messages/1", "GetMessage", {"user_id": "u", "message_id": "1"}),
        ("SEARCH", "/v1/search", "Search", {}),
    ],
)
def test_match(table: RouteTable, method: str, path: str, grpc_method: str, params: dict[str, str]) -> None:
    match = table.match(method, path)
    assert match is not None
    assert (match.route.grpc_method, match.path_params) == (SERVICE + grpc_method, params)


@pytest.mark.parametrize(("method", "path"), [("POST", "/v1/messages/1"), ("PUT", "/v1/messages/1"), ("GET", "/")])
def test_no_match(table: RouteTable, method: str, path: str) -> None:
    assert table.match(method, path) is None


def test_more_specific_templates_win_whatever_the_declaration_order() -> None:
    table = RouteTable.from_services(
        [
            service(
                http_pb2.HttpRule(get="/v1/{id=**}"),
                http_pb2.HttpRule(get="/v1/x/{id}"),
                http_pb2.HttpRule(get="/v1/x/y"),
            )
        ]
    )
    found = {path: table.match("GET", path) for path in ("/v1/x/y", "/v1/x/z", "/v1/a/b")}
    assert {path: match.route.method.name if match else None for path, match in found.items()} == {
        "/v1/x/y": "M2",
        "/v1/x/z": "M1",
        "/v1/a/b": "M0",
    }


def test_methods_without_http_option_are_skipped(table: RouteTable) -> None:
    assert all(not route.grpc_method.endswith("/Internal") for route in table.routes)


def test_custom_kind_and_additional_bindings() -> None:
    rule = http_pb2.HttpRule(
        custom=http_pb2.CustomHttpPattern(kind="head", path="/v1/{id}"),
        additional_bindings=[http_pb2.HttpRule(post="/v1/{id}:run", body="*")],
    )
    routes = RouteTable.from_services([service(rule)]).routes
    assert [(r.http_method, r.template.source, r.body) for r in routes] == [
        ("HEAD", "/v1/{id}", ""),
        ("POST", "/v1/{id}:run", "*"),
    ]


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ([http_pb2.HttpRule(get="/v1/{nope}")], "/bad.v1.Svc/M0 /v1/{nope}: bad.v1.Req has no field 'nope' ('nope')"),
        (
            [http_pb2.HttpRule(get="/v1/{sub.nope}")],
            "/bad.v1.Svc/M0 /v1/{sub.nope}: bad.v1.Sub has no field 'nope' ('sub.nope')",
        ),
        (
            [http_pb2.HttpRule(get="/v1/{sub}")],
            "/bad.v1.Svc/M0 /v1/{sub}: path variable 'sub' must be a singular scalar field",
        ),
        (
            [http_pb2.HttpRule(get="/v1/{tags}")],
            "/bad.v1.Svc/M0 /v1/{tags}: path variable 'tags' must be a singular scalar field",
        ),
        (
            [http_pb2.HttpRule(get="/v1/{id.x}")],
            "/bad.v1.Svc/M0 /v1/{id.x}: 'id.x' is not a path of singular message fields",
        ),
        (
            [http_pb2.HttpRule(post="/v1", body="nope")],
            "/bad.v1.Svc/M0: body: bad.v1.Req has no top-level field 'nope'",
        ),
        (
            [http_pb2.HttpRule(post="/v1", body="sub.name")],
            "/bad.v1.Svc/M0: body: bad.v1.Req has no top-level field 'sub.name'",
        ),
        (
            [http_pb2.HttpRule(get="/v1", response_body="nope")],
            "/bad.v1.Svc/M0: response_body: bad.v1.Req has no top-level field 'nope'",
        ),
        ([http_pb2.HttpRule(get="/v1", body="*")], "/bad.v1.Svc/M0: GET /v1 must not have a body"),
        ([http_pb2.HttpRule(delete="/v1", body="id")], "/bad.v1.Svc/M0: DELETE /v1 must not have a body"),
        ([http_pb2.HttpRule(body="*")], "/bad.v1.Svc/M0: HttpRule has no pattern"),
        (
            [http_pb2.HttpRule(custom=http_pb2.CustomHttpPattern(path="/v1"))],
            "/bad.v1.Svc/M0: custom HttpRule has no kind",
        ),
        ([http_pb2.HttpRule(get="/v1/{id")], "/bad.v1.Svc/M0: invalid path template '/v1/{id': unclosed '{'"),
        (
            [http_pb2.HttpRule(get="/v1/{id}"), http_pb2.HttpRule(get="/v1/{sub.name}")],
            "GET /v1/{sub.name} (/bad.v1.Svc/M1) conflicts with GET /v1/{id} (/bad.v1.Svc/M0)",
        ),
        (
            [http_pb2.HttpRule(get="/v1/x", additional_bindings=[http_pb2.HttpRule(get="/v1/x")])],
            "GET /v1/x (/bad.v1.Svc/M0) conflicts with GET /v1/x (/bad.v1.Svc/M0)",
        ),
        (
            [
                http_pb2.HttpRule(
                    get="/v1/x",
                    additional_bindings=[
                        http_pb2.HttpRule(get="/v1/y", additional_bindings=[http_pb2.HttpRule(get="/v1/z")])
                    ],
                )
            ],
            "/bad.v1.Svc/M0: additional_bindings must not nest",
        ),
    ],
)
def test_bad_bindings_fail_at_build_time(rules: list[http_pb2.HttpRule], message: str) -> None:
    with pytest.raises(RouteError) as caught:
        RouteTable.from_services([service(*rules)])
    assert str(caught.value) == message


def test_client_streaming_is_rejected() -> None:
    with pytest.raises(RouteError, match="client-streaming methods cannot be transcoded"):
        RouteTable.from_services([service(http_pb2.HttpRule(post="/v1", body="*"), client_streaming=True)])
