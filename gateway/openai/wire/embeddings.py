"""The body and answer of POST /v1/embeddings: OpenAI JSON ⇄ tollgate.v1 embedding messages.

`input` is a string, a list of strings, a list of token ids or a list of such lists. The proto keeps texts in
`input` and token lists in `input_tokens` without remembering which of the equivalent JSON forms came in, so
the upstream body always uses a list: a string becomes `["text"]` and one token list `[[1, 2]]`. OpenAI
treats both the same way (one input, one embedding at index 0).

Vectors are float32 in the proto, as OpenAI computes them: an upstream's JSON numbers come back exactly.
"""

from __future__ import annotations

from typing import Any

from tollgate.v1 import relay_pb2

from gateway.openai.wire.values import (
    INT64_MAX,
    WireError,
    as_dict,
    as_int,
    as_list,
    as_str,
    join,
    refuse_upstream_key,
    str_or_empty,
    struct_from_json,
    struct_to_json,
    token_count,
)

_MODELLED = frozenset({"model", "input", "encoding_format", "dimensions", "user"})


def embedding_request_from_json(body: object) -> relay_pb2.CreateEmbeddingRequest:
    obj = as_dict(body, "")
    request = relay_pb2.CreateEmbeddingRequest()
    for required in ("model", "input"):
        if obj.get(required) is None:
            raise WireError(f"Missing required parameter: '{required}'.", required)
    request.model = as_str(obj["model"], "model")
    _read_input(request, obj["input"])
    encoding_format, dimensions, user = obj.get("encoding_format"), obj.get("dimensions"), obj.get("user")
    if encoding_format is not None:
        request.encoding_format = as_str(encoding_format, "encoding_format")
    if dimensions is not None:
        request.dimensions = as_int(dimensions, "dimensions", 1)
    if user is not None:
        request.user = as_str(user, "user")
    kept = {key: value for key, value in obj.items() if key not in _MODELLED}
    for key in kept:
        refuse_upstream_key(key)
    if kept:
        struct_from_json(request.extra, kept, "")
    return request


def _read_input(request: relay_pb2.CreateEmbeddingRequest, value: object) -> None:
    if isinstance(value, str):
        request.input.append(as_str(value, "input"))
        return
    items = as_list(value, "input")
    if not items:
        return
    first = items[0]
    if isinstance(first, str):
        request.input.extend(as_str(item, join("input", index)) for index, item in enumerate(items))
    elif isinstance(first, list):
        for index, item in enumerate(items):
            path = join("input", index)
            _read_token_ids(request.input_tokens.add(), as_list(item, path), path)
    else:
        _read_token_ids(request.input_tokens.add(), items, "input")


def _read_token_ids(target: relay_pb2.TokenIds, items: list[Any], path: str) -> None:
    target.ids.extend(as_int(item, join(path, index), -INT64_MAX - 1, INT64_MAX) for index, item in enumerate(items))


def embedding_request_to_json(request: relay_pb2.CreateEmbeddingRequest) -> dict[str, Any]:
    """The upstream body; `input` is always a list (see the module docstring). Raises WireError when a
    gRPC caller set both `input` and `input_tokens`."""
    if request.input and request.input_tokens:
        raise WireError("Set either 'input' or 'input_tokens', not both.", "input")
    out: dict[str, Any] = {}
    if request.HasField("extra"):
        out = struct_to_json(request.extra)
        for key in _MODELLED:
            out.pop(key, None)
    out["model"] = request.model
    out["input"] = list(request.input) or [list(tokens.ids) for tokens in request.input_tokens]
    if request.encoding_format:
        out["encoding_format"] = request.encoding_format
    if request.HasField("dimensions"):
        out["dimensions"] = request.dimensions
    if request.user:
        out["user"] = request.user
    return out


def embedding_response_from_json(body: object) -> relay_pb2.CreateEmbeddingResponse:
    obj = as_dict(body, "")
    response = relay_pb2.CreateEmbeddingResponse()
    response.object = str_or_empty(obj.get("object"), "object")
    response.model = str_or_empty(obj.get("model"), "model")
    data = obj.get("data")
    for index, item in enumerate([] if data is None else as_list(data, "data")):
        _read_embedding(response.data.add(), item, join("data", index))
    usage = obj.get("usage")
    if isinstance(usage, dict):
        response.usage.prompt_tokens = token_count(usage.get("prompt_tokens"))
        response.usage.total_tokens = token_count(usage.get("total_tokens"))
    return response


def _read_embedding(embedding: relay_pb2.Embedding, value: object, path: str) -> None:
    obj = as_dict(value, path)
    embedding.object = str_or_empty(obj.get("object"), join(path, "object"))
    index = obj.get("index")
    embedding.index = 0 if index is None else as_int(index, join(path, "index"))
    vector, path = obj.get("embedding"), join(path, "embedding")
    if isinstance(vector, str):
        embedding.embedding_base64 = as_str(vector, path)
        return
    try:
        embedding.embedding.extend(as_list(vector, path))
    except (TypeError, ValueError, OverflowError) as exc:
        if isinstance(exc, WireError):
            raise
        raise WireError(f"Invalid value for '{path}': expected a list of numbers.", path) from exc


def embedding_response_to_json(response: relay_pb2.CreateEmbeddingResponse) -> dict[str, Any]:
    return {
        "object": response.object or "list",
        "data": [
            {
                "object": item.object or "embedding",
                "index": item.index,
                "embedding": item.embedding_base64 if item.embedding_base64 else list(item.embedding),
            }
            for item in response.data
        ],
        "model": response.model,
        "usage": {"prompt_tokens": response.usage.prompt_tokens, "total_tokens": response.usage.total_tokens},
    }
