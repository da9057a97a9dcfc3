"""The OpenAI wire codec: embeddings requests and answers."""

from __future__ import annotations

import base64
import copy
import struct
from typing import Any

import pytest
from openai.types import CreateEmbeddingResponse
from tollgate.v1 import relay_pb2

from gateway.openai.wire import (
    WireError,
    embedding_request_from_json,
    embedding_request_to_json,
    embedding_response_from_json,
    embedding_response_to_json,
)
from tests.support.wire_fuzz import decode_mutations

REQUESTS: dict[str, dict[str, Any]] = {
    "string": {"model": "text-embedding-3-small", "input": "hello"},
    "strings": {"model": "m", "input": ["a", "b"], "encoding_format": "float", "dimensions": 256, "user": "u"},
    "tokens": {"model": "m", "input": [1, 2, 3], "encoding_format": "base64"},
    "token_lists": {"model": "m", "input": [[1, 2], [3], []]},
    "empty": {"model": "m", "input": []},
    "extras": {"model": "m", "input": ["x"], "metadata": {"a": "b"}, "input_type": "query"},
}
UPSTREAM_BODIES = {
    "string": {"model": "text-embedding-3-small", "input": ["hello"]},
    "strings": REQUESTS["strings"],
    "tokens": {"model": "m", "input": [[1, 2, 3]], "encoding_format": "base64"},
    "token_lists": REQUESTS["token_lists"],
    "empty": REQUESTS["empty"],
    "extras": REQUESTS["extras"],
}


@pytest.mark.parametrize("name", REQUESTS)
def test_request_to_the_upstream(name: str) -> None:
    request = embedding_request_from_json(copy.deepcopy(REQUESTS[name]))
    wire = relay_pb2.CreateEmbeddingRequest.FromString(request.SerializeToString())
    assert embedding_request_to_json(wire) == UPSTREAM_BODIES[name]


def test_request_fields() -> None:
    request = embedding_request_from_json(REQUESTS["token_lists"])
    assert [list(tokens.ids) for tokens in request.input_tokens] == [[1, 2], [3], []]
    assert not request.input and not request.HasField("dimensions")
    extras = embedding_request_from_json(REQUESTS["extras"])
    assert set(extras.extra.fields) == {"metadata", "input_type"}


def test_both_inputs_set_by_a_grpc_caller_is_an_error() -> None:
    request = relay_pb2.CreateEmbeddingRequest(model="m", input=["a"])
    request.input_tokens.add(ids=[1])
    with pytest.raises(WireError) as caught:
        embedding_request_to_json(request)
    assert caught.value.param == "input"


REQUEST_ERRORS: list[tuple[Any, str | None]] = [
    ({"input": "x"}, "model"),
    ({"model": "m"}, "input"),
    ({"model": "m", "input": 5}, "input"),
    ({"model": "m", "input": ["a", 1]}, "input[1]"),
    ({"model": "m", "input": [1, "a"]}, "input[1]"),
    ({"model": "m", "input": [1, True]}, "input[1]"),
    ({"model": "m", "input": [1, 2**64]}, "input[1]"),
    ({"model": "m", "input": [[1], 2]}, "input[1]"),
    ({"model": "m", "input": [[1], [2, "x"]]}, "input[1][1]"),
    ({"model": "m", "input": [None]}, "input[0]"),
    ({"model": "m", "input": "x", "dimensions": 0}, "dimensions"),
    ({"model": "m", "input": "x", "encoding_format": 1}, "encoding_format"),
    ({"model": "m", "input": "x", "user": {}}, "user"),
    ({"model": "m", "input": "x", "api_base": "http://169.254.169.254"}, "api_base"),
    ({"model": "m", "input": "x", "custom_llm_provider": "openai"}, "custom_llm_provider"),
]


@pytest.mark.parametrize(("body", "param"), REQUEST_ERRORS)
def test_request_wire_errors(body: Any, param: str | None) -> None:
    with pytest.raises(WireError) as caught:
        embedding_request_from_json(body)
    assert caught.value.param == param


FLOATS = [0.0023064255, -0.009327292, 0.015797347]
FLOAT32S = [struct.unpack("<f", struct.pack("<f", value))[0] for value in FLOATS]
BASE64 = base64.b64encode(struct.pack("<3f", *FLOATS)).decode()
RESPONSES: list[dict[str, Any]] = [
    {
        "object": "list",
        "data": [
            {"object": "embedding", "index": 0, "embedding": FLOATS},
            {"object": "embedding", "index": 1, "embedding": FLOATS},
        ],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 8, "total_tokens": 8},
    },
    {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": BASE64}],
        "model": "m",
        "usage": {"prompt_tokens": 2, "total_tokens": 2},
    },
]


def test_float_response() -> None:
    out = embedding_response_to_json(embedding_response_from_json(copy.deepcopy(RESPONSES[0])))
    assert out == {**RESPONSES[0], "data": [{**item, "embedding": FLOAT32S} for item in RESPONSES[0]["data"]]}
    parsed = CreateEmbeddingResponse.model_validate(out)
    assert parsed.data[1].index == 1 and parsed.usage.prompt_tokens == 8
    again = embedding_response_to_json(embedding_response_from_json(out))
    assert again == out  # float32 values, as OpenAI sends them, come back exactly


def test_base64_response() -> None:
    out = embedding_response_to_json(embedding_response_from_json(copy.deepcopy(RESPONSES[1])))
    assert out == RESPONSES[1]


def test_hostile_usage_reads_as_zero() -> None:
    body = {"data": [], "usage": {"prompt_tokens": -1, "total_tokens": 10**10}}
    assert embedding_response_to_json(embedding_response_from_json(body))["usage"] == {
        "prompt_tokens": 0,
        "total_tokens": 0,
    }


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"data": {}}, "data"),
        ({"data": [{"embedding": None}]}, "data[0].embedding"),
        ({"data": [{"embedding": [0.1, "x"]}]}, "data[0].embedding"),
        ({"data": [{"embedding": [0.1, 10**400]}]}, "data[0].embedding"),
        ({"data": [{"index": "0", "embedding": []}]}, "data[0].index"),
        ({"model": 1}, "model"),
    ],
)
def test_response_wire_errors(body: Any, param: str) -> None:
    with pytest.raises(WireError) as caught:
        embedding_response_from_json(body)
    assert caught.value.param == param


def test_hostile_embedding_bodies_raise_only_wire_errors() -> None:
    requests = list(REQUESTS.values())
    assert decode_mutations(embedding_request_from_json, embedding_request_to_json, requests, rounds=2000, seed=4) > 0
    assert (
        decode_mutations(embedding_response_from_json, embedding_response_to_json, RESPONSES, rounds=1000, seed=5) > 0
    )
