"""The transcoder end to end: httpx → uvicorn → transcoder app → grpc.aio channel → echo servicer."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import httpx
import pytest

from gateway.transcode_app import create_transcoder_app
from tests.support.echo_service import EchoServicer
from tests.support.protos import compile_proto
from tests.support.servers import running_grpc_server, running_uvicorn


@pytest.fixture(scope="module")
def pb2(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    return compile_proto("transcoding_test.proto", Path(tmp_path_factory.mktemp("protos")))


@dataclass
class Stack:
    client: httpx.AsyncClient
    servicer: EchoServicer
    base_url: str


@pytest.fixture
async def stack(pb2: ModuleType) -> AsyncIterator[Stack]:
    servicer = EchoServicer(pb2)
    async with running_grpc_server(servicer.handler()) as target, grpc.aio.insecure_channel(target) as channel:
        app = create_transcoder_app(channel, [servicer.service], default_timeout=30.0)
        async with running_uvicorn(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
            yield Stack(client, servicer, url)


async def get_ok(stack: Stack, path: str, **kwargs: Any) -> dict[str, Any]:
    response = await stack.client.get(path, **kwargs)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    return body


async def test_path_variable_and_full_proto3_json_mapping(stack: Stack) -> None:
    body = await get_ok(stack, "/v1/messages/m1")
    assert body["method"] == "GetMessage"
    assert body["sequence"] == 0
    assert body["request"] == {
        "name": "",
        "message_id": "m1",
        "user_id": "",
        "revision": 0,
        "tags": [],
        "numbers": [],
        "color": "COLOR_UNSPECIFIED",
        "flag": False,
        "ratio": 0.0,
        "data": "",
        "big": 0,
        "labels": {},
        "delay_ms": 0,
        "stream_count": 0,
    }


@pytest.mark.parametrize(
    ("path", "method", "expected"),
    [
        ("/v1/users/u1/messages/m2", "GetMessage", {"user_id": "u1", "message_id": "m2"}),
        ("/v1/topics/t1", "GetByName", {"name": "topics/t1"}),
        ("/v1/nested/deep", "GetNested", {"sub": {"subfield": "deep", "count": 0}}),
        ("/v1/shelves/s1/books/b1", "GetBook", {"name": "shelves/s1/books/b1"}),
        ("/v1/shelves/s1/books/b1/pages/2", "GetBook", {"name": "shelves/s1/books/b1/pages/2"}),
        ("/v1/shelves/s1/books", "GetBook", {"name": "shelves/s1/books"}),
        ("/v2/a/b/c", "GetAnything", {"name": "a/b/c"}),
        ("/v1/any/x/tail/1/2", "Wildcards", {"name": ""}),
        # Single-segment variables decode fully, multi-segment ones keep %2F.
        ("/v1/messages/a%2Fb%20c%E2%82%AC", "GetMessage", {"message_id": "a/b c€"}),
        ("/v1/shelves/a%2Fb/books/c%20d%2fe", "GetBook", {"name": "shelves/a%2Fb/books/c d%2fe"}),
        ("/v1/topics/x%3Ay", "GetByName", {"name": "topics/x:y"}),
        # No verb route for GET: the colon is part of the variable.
        ("/v1/messages/m1:archive", "GetMessage", {"message_id": "m1:archive"}),
    ],
)
async def test_template_forms(stack: Stack, path: str, method: str, expected: dict[str, Any]) -> None:
    body = await get_ok(stack, path)
    assert body["method"] == method
    assert {key: body["request"][key] for key in expected} == expected


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/topics/a/b"),
        ("GET", "/v1/any/x/nottail/1"),
        ("GET", "/v1/messages/"),
        ("GET", "/v1/messages"),
        ("PUT", "/v1/messages/m1"),
        ("POST", "/v1/messages/m1"),
        ("GET", "/nothing"),
        ("GET", "/"),
    ],
)
async def test_unbound_paths_are_not_found(stack: Stack, method: str, path: str) -> None:
    response = await stack.client.request(method, path)
    assert response.status_code == 404
    assert response.json() == {"code": 5, "message": "Not Found", "details": []}
    assert stack.servicer.calls == []


async def test_bad_percent_encoding_is_invalid_argument(stack: Stack) -> None:
    async with httpx.AsyncClient() as client:
        url = httpx.URL(stack.base_url + "/v1/messages/x").copy_with(raw_path=b"/v1/messages/%FF%FE")
        response = await client.get(url)
    assert response.status_code == 400
    assert response.json()["code"] == 3


async def test_custom_verb(stack: Stack) -> None:
    response = await stack.client.post("/v1/messages/m1:archive", json={"name": "bye", "message_id": "spoof"})
    assert response.status_code == 200
    body = response.json()
    assert body["method"] == "ArchiveMessage"
    assert (body["request"]["message_id"], body["request"]["name"]) == ("m1", "bye")


async def test_delete_and_custom_method_kind(stack: Stack) -> None:
    deleted = await stack.client.delete("/v1/messages/m1")
    searched = await stack.client.request("SEARCH", "/v1/search", json={"name": "query"})
    assert (deleted.status_code, deleted.json()["method"]) == (200, "DeleteMessage")
    assert (searched.status_code, searched.json()["method"]) == (200, "Search")
    assert searched.json()["request"]["name"] == "query"


async def test_response_body_serialises_only_that_field(stack: Stack) -> None:
    body = await get_ok(stack, "/v1/echo/m1", params={"revision": "5"})
    assert "method" not in body
    assert (body["message_id"], body["revision"]) == ("m1", 5)


async def test_body_field_with_path_and_query(stack: Stack) -> None:
    response = await stack.client.patch(
        "/v1/messages/m1?revision=3&message.text=from-query&message_id=from-query",
        json={"message_id": "inner", "text": "hi", "unknown": [1, 2]},
    )
    assert response.status_code == 200, response.text
    request = response.json()["request"]
    assert request["message"] == {"message_id": "inner", "text": "hi"}
    assert (request["message_id"], request["revision"]) == ("m1", 3)


async def test_body_star_path_overrides_and_query_is_ignored(stack: Stack) -> None:
    response = await stack.client.post(
        "/v1/users/u1/messages?name=from-query&revision=1",
        json={"userId": "spoof", "name": "n", "revision": "9007199254740993", "big": 7, "bogus": {"x": 1}},
    )
    assert response.status_code == 200, response.text
    request = response.json()["request"]
    assert response.json()["method"] == "CreateMessage"
    # int64 stays a JSON number below 2**53 and becomes a string above it.
    assert (request["user_id"], request["name"], request["revision"], request["big"]) == (
        "u1",
        "n",
        "9007199254740993",
        7,
    )


async def test_empty_body_with_body_star(stack: Stack) -> None:
    response = await stack.client.post("/v1/messages")
    assert (response.status_code, response.json()["method"]) == (200, "CreateMessage")


async def test_query_parameters(stack: Stack) -> None:
    query = (
        "revision=7&sub.subfield=s&sub.count=2&tags=a&tags=b&numbers=1&numbers=2&color=COLOR_BLUE&flag=true"
        "&ratio=0.5&data=aGk%3D&big=18446744073709551615&wrapped=5&at=2024-01-02T03:04:05Z&wait=1.5s&note=n"
        "&userId=u9&message_id=from-query&unknown=1&labels=x&sub.unknown=2"
    )
    request = (await get_ok(stack, f"/v1/messages/m1?{query}"))["request"]
    expected = {
        "message_id": "m1",
        "user_id": "u9",
        "revision": 7,
        "sub": {"subfield": "s", "count": 2},
        "tags": ["a", "b"],
        "numbers": [1, 2],
        "color": "COLOR_BLUE",
        "flag": True,
        "ratio": 0.5,
        "data": "aGk=",
        "big": "18446744073709551615",
        "wrapped": 5,
        "at": "2024-01-02T03:04:05Z",
        "wait": "1.500s",
        "note": "n",
        "labels": {},
    }
    assert {key: request[key] for key in expected} == expected


async def test_path_variable_wins_over_query_for_nested_field(stack: Stack) -> None:
    request = (await get_ok(stack, "/v1/nested/path?sub.subfield=query&sub.count=4"))["request"]
    assert request["sub"] == {"subfield": "path", "count": 4}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("revision=abc", "invalid value for field 'revision': 'abc'"),
        ("revision=1&revision=2", "too many values for field 'revision'"),
        ("color=COLOR_PURPLE", "invalid value for field 'color': 'COLOR_PURPLE'"),
        ("flag=maybe", "invalid value for field 'flag': 'maybe'"),
        ("sub.count=99999999999", "invalid value for field 'sub.count': '99999999999'"),
        ("data=%%%", "invalid value for field 'data': '%%%'"),
        ("message=x", "field 'message' cannot be set from a query parameter"),
    ],
)
async def test_invalid_query_values_are_bad_requests(stack: Stack, query: str, message: str) -> None:
    response = await stack.client.get(f"/v1/messages/m1?{query}")
    assert response.status_code == 400
    assert response.json() == {"code": 3, "message": message, "details": []}
    assert stack.servicer.calls == []


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b'{"revision": "x"}', b'{"tags": "a"}'])
async def test_invalid_bodies_are_bad_requests(stack: Stack, content: bytes) -> None:
    response = await stack.client.post("/v1/messages", content=content)
    assert response.status_code == 400
    body = response.json()
    assert (body["code"], body["details"]) == (3, [])
    assert body["message"].startswith(("invalid JSON body", "invalid request body", "the JSON body must be"))


@pytest.mark.parametrize(
    ("code", "http_status"),
    [
        (grpc.StatusCode.CANCELLED, 499),
        (grpc.StatusCode.UNKNOWN, 500),
        (grpc.StatusCode.INVALID_ARGUMENT, 400),
        (grpc.StatusCode.DEADLINE_EXCEEDED, 504),
        (grpc.StatusCode.NOT_FOUND, 404),
        (grpc.StatusCode.ALREADY_EXISTS, 409),
        (grpc.StatusCode.PERMISSION_DENIED, 403),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 429),
        (grpc.StatusCode.FAILED_PRECONDITION, 400),
        (grpc.StatusCode.ABORTED, 409),
        (grpc.StatusCode.OUT_OF_RANGE, 400),
        (grpc.StatusCode.UNIMPLEMENTED, 501),
        (grpc.StatusCode.INTERNAL, 500),
        (grpc.StatusCode.UNAVAILABLE, 503),
        (grpc.StatusCode.DATA_LOSS, 500),
        (grpc.StatusCode.UNAUTHENTICATED, 401),
    ],
)
async def test_grpc_errors_map_to_http(stack: Stack, code: grpc.StatusCode, http_status: int) -> None:
    number = code.value[0]
    response = await stack.client.get(f"/v1/messages/m1?fail.code={number}&fail.message=boom")
    assert response.status_code == http_status
    assert response.json() == {"code": number, "message": "boom", "details": []}
    assert "retry-after" not in response.headers


async def test_error_details_and_retry_after(stack: Stack) -> None:
    response = await stack.client.get(
        "/v1/messages/m1",
        params={"fail.code": "8", "fail.message": "slow down", "fail.reason": "QUOTA", "fail.retry_delay_ms": "1500"},
        headers={"x-request-id": "req-err"},
    )
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"
    assert response.headers["x-request-id"] == "req-err"
    assert response.json() == {
        "code": 8,
        "message": "slow down",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "QUOTA",
                "domain": "tollgate.test",
                "metadata": {"limit": "10"},
            },
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retry_delay": "1.500s"},
        ],
    }


async def test_server_streaming_as_newline_delimited_json(stack: Stack) -> None:
    response = await stack.client.get("/v1/streams/s1", params={"stream_count": "3"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.text.endswith("\n")
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [line["result"]["sequence"] for line in lines] == [0, 1, 2]
    assert {line["result"]["request"]["message_id"] for line in lines} == {"s1"}


async def test_stream_error_after_first_message_is_an_error_line(stack: Stack) -> None:
    response = await stack.client.get(
        "/v1/streams/s1", params={"stream_count": "3", "fail.code": "9", "fail.message": "gone", "fail.after": "2"}
    )
    assert response.status_code == 200
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [line["result"]["sequence"] for line in lines[:2]] == [0, 1]
    assert lines[2:] == [{"error": {"code": 9, "message": "gone", "details": []}}]


async def test_stream_error_before_first_message_is_an_http_error(stack: Stack) -> None:
    response = await stack.client.get(
        "/v1/streams/s1", params={"stream_count": "3", "fail.code": "5", "fail.message": "none", "fail.after": "0"}
    )
    assert response.status_code == 404
    assert response.json() == {"code": 5, "message": "none", "details": []}


async def test_empty_stream(stack: Stack) -> None:
    response = await stack.client.get("/v1/streams/s1")
    assert (response.status_code, response.content) == (200, b"")


async def test_allow_listed_metadata_is_forwarded(stack: Stack) -> None:
    headers = {
        "Authorization": "Bearer sk-test",
        "X-Request-Id": "req-1",
        "X-Api-Key": "key-1",
        "Idempotency-Key": "idem-1",
        "X-Custom": "not forwarded",
        "Cookie": "session=secret",
        "X-Forwarded-For": "10.9.9.9",
    }
    response = await stack.client.get("/v1/messages/m1", headers=headers)
    assert response.headers["x-request-id"] == "req-1"
    assert response.json()["metadata"] == {
        "authorization": "Bearer sk-test",
        "x-request-id": "req-1",
        "x-api-key": "key-1",
        "idempotency-key": "idem-1",
        "x-forwarded-for": "127.0.0.1",
    }


async def test_request_id_is_generated_when_absent_or_invalid(stack: Stack) -> None:
    for headers in ({}, {"x-request-id": "bad id with spaces"}):
        response = await stack.client.get("/v1/messages/m1", headers=headers)
        request_id = response.headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", request_id)
        assert response.json()["metadata"]["x-request-id"] == request_id


async def test_deadline_from_grpc_timeout_header_and_default(stack: Stack) -> None:
    explicit = await get_ok(stack, "/v1/messages/m1", headers={"Grpc-Timeout": "5S"})
    default = await get_ok(stack, "/v1/messages/m1")
    # gRPC rounds the deadline it puts on the wire, so allow a little above the timeout.
    assert 4.0 < explicit["time_remaining"] < 5.5
    assert 29.0 < default["time_remaining"] < 30.5


async def test_deadline_exceeded_is_gateway_timeout(stack: Stack) -> None:
    response = await stack.client.get("/v1/messages/m1?delay_ms=3000", headers={"Grpc-Timeout": "100m"})
    assert response.status_code == 504
    assert response.json()["code"] == 4


async def test_invalid_grpc_timeout_is_bad_request(stack: Stack) -> None:
    response = await stack.client.get("/v1/messages/m1", headers={"Grpc-Timeout": "soon"})
    assert response.status_code == 400
    assert response.json() == {"code": 3, "message": "invalid Grpc-Timeout 'soon'", "details": []}


async def test_client_disconnect_cancels_unary_call(stack: Stack) -> None:
    with pytest.raises(httpx.ReadTimeout):
        await stack.client.get("/v1/messages/m1?delay_ms=5000", timeout=0.3)
    await asyncio.wait_for(stack.servicer.cancelled.wait(), timeout=3)


async def test_client_disconnect_cancels_stream(stack: Stack) -> None:
    params = {"stream_count": "100", "delay_ms": "200"}
    async with stack.client.stream("GET", "/v1/streams/s1", params=params) as response:
        lines = response.aiter_lines()
        first = json.loads(await anext(lines))
        assert first["result"]["sequence"] == 0
    await asyncio.wait_for(stack.servicer.cancelled.wait(), timeout=3)


async def test_openapi_document_is_served(stack: Stack) -> None:
    body = await get_ok(stack, "/openapi.json")
    assert body["openapi"] == "3.1.0"
    assert "/v1/messages/{message_id}" in body["paths"]
