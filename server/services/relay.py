"""RelayService: the model list, chat completions (whole or streamed) and embeddings."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf import json_format, struct_pb2
from tollgate.v1 import chat_pb2, messages_pb2, relay_pb2, relay_pb2_grpc

from server.domain.catalogue import Catalogue, CatalogueModel
from server.domain.messages import Messages, input_estimate
from server.domain.metering import UsageMeter
from server.domain.records import ApiToken
from server.domain.relay import Relay
from server.domain.token_count import prompt_tokens, text_tokens
from server.errors import PermissionDeniedError
from server.interceptors import current_client_ip, current_principal, current_request_id

Context = grpc.aio.ServicerContext[Any, Any]
log = logging.getLogger(__name__)
_CREATED = 1_767_225_600  # 2026-01-01: a fixed date, since the catalogue is configuration, not history


def _meter(params: chat_pb2.ChatCompletionParams, *, stream: bool) -> UsageMeter:
    return UsageMeter(params.model, prompt_tokens(params), stream, client_ip=current_client_ip())


def _token() -> ApiToken:
    token = current_principal().token
    if token is None:  # the access table admits only API keys here
        raise PermissionDeniedError("relay calls need an API key", reason="wrong_credential_kind")
    return token


def _report(meter: UsageMeter) -> None:
    """One metadata line per call, never content: what the ledger will record."""
    if not log.isEnabledFor(logging.INFO):
        return
    usage = meter.usage()
    fields = {
        "model": meter.requested_model,
        "served": meter.served_model or "-",
        "channel": meter.channel or "-",
        "stream": meter.stream,
        "status": meter.status,
        "prompt_tokens": usage.prompt_tokens,
        "cached_tokens": usage.prompt_tokens_details.cached_tokens,
        "completion_tokens": usage.completion_tokens,
        "estimated": meter.estimated,
        "latency_ms": meter.latency_ms(),
        "ttft_ms": meter.time_to_first_token_ms(),
    }
    log.info("relayed", extra={"fields": fields})


def model_message(model: CatalogueModel) -> relay_pb2.Model:
    config = model.config
    return relay_pb2.Model(
        id=model.id,
        object="model",
        created=_CREATED,
        owned_by=config.owned_by,
        context_window=config.context_window,
        max_output_tokens=config.max_output_tokens,
        reasoning=config.reasoning,
        vision=config.vision,
        fallbacks=config.fallbacks,
    )


class RelayServicer(relay_pb2_grpc.RelayServiceServicer):
    """Thin adapter over the catalogue and the relay."""

    def __init__(self, catalogue: Catalogue, relay: Relay) -> None:
        self._catalogue = catalogue
        self._relay = relay
        self._messages = Messages(relay)

    async def ListModels(self, request: relay_pb2.ListModelsRequest, context: Context) -> relay_pb2.ListModelsResponse:
        models = self._catalogue.visible_to(current_principal().token)
        return relay_pb2.ListModelsResponse(object="list", data=[model_message(model) for model in models])

    async def GetModel(self, request: relay_pb2.GetModelRequest, context: Context) -> relay_pb2.GetModelResponse:
        model = self._catalogue.get(request.model, current_principal().token)
        return relay_pb2.GetModelResponse(model_info=model_message(model))

    async def CreateChatCompletion(
        self, request: relay_pb2.CreateChatCompletionRequest, context: Context
    ) -> relay_pb2.CreateChatCompletionResponse:
        meter = _meter(request.params, stream=False)
        try:
            return await self._relay.complete(_token(), request.params, current_request_id(), meter)
        finally:
            _report(meter)

    async def StreamChatCompletion(
        self, request: relay_pb2.StreamChatCompletionRequest, context: Context
    ) -> AsyncIterator[relay_pb2.StreamChatCompletionResponse]:
        meter = _meter(request.params, stream=True)
        stream = None
        try:
            stream = await self._relay.stream(_token(), request.params, current_request_id(), meter)
            async for chunk in stream.chunks:
                yield chunk
        finally:
            if stream is not None:
                await stream.close()  # settles now, also when the client went away
            _report(meter)

    async def CreateEmbedding(
        self, request: relay_pb2.CreateEmbeddingRequest, context: Context
    ) -> relay_pb2.CreateEmbeddingResponse:
        texts = [*request.input, *(" ".join(map(str, ids.ids)) for ids in request.input_tokens)]
        meter = UsageMeter(request.model, sum(map(text_tokens, texts)), False, client_ip=current_client_ip())
        try:
            return await self._relay.embed(_token(), request, current_request_id(), meter)
        finally:
            _report(meter)

    async def CreateMessage(
        self, request: messages_pb2.CreateMessageRequest, context: Context
    ) -> messages_pb2.CreateMessageResponse:
        body = struct_to_json(request.body)
        meter = _message_meter(body, stream=False)
        try:
            message = await self._messages.create(_token(), body, request.anthropic_beta, current_request_id(), meter)
            return messages_pb2.CreateMessageResponse(message=json_to_struct(message))
        finally:
            _report(meter)

    async def StreamMessage(
        self, request: messages_pb2.StreamMessageRequest, context: Context
    ) -> AsyncIterator[messages_pb2.StreamMessageResponse]:
        body = struct_to_json(request.body)
        meter = _message_meter(body, stream=True)
        stream = None
        try:
            stream = await self._messages.stream(_token(), body, request.anthropic_beta, current_request_id(), meter)
            async for event, data in stream.events:
                yield messages_pb2.StreamMessageResponse(event=event, data=json_to_struct(data))
        finally:
            if stream is not None:
                await stream.close()  # settles now, also when the client went away
            _report(meter)

    async def CountMessageTokens(
        self, request: messages_pb2.CountMessageTokensRequest, context: Context
    ) -> messages_pb2.CountMessageTokensResponse:
        tokens = self._messages.count_tokens(_token(), struct_to_json(request.body))
        return messages_pb2.CountMessageTokensResponse(input_tokens=tokens)


def _message_meter(body: dict[str, Any], *, stream: bool) -> UsageMeter:
    return UsageMeter(str(body.get("model", "")), input_estimate(body), stream, client_ip=current_client_ip())


def struct_to_json(struct: struct_pb2.Struct) -> dict[str, Any]:
    """A Struct as JSON, whole numbers as ints (a Struct holds every number as a double)."""
    return dict(_whole(json_format.MessageToDict(struct)))


def json_to_struct(value: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(value)
    return struct


def _whole(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _whole(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_whole(item) for item in value]
    return value
