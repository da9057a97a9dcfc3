"""The gRPC door: grpc.aio stubs, and the normalisation of relay messages into Outcomes (shared with TypeScript)."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from google.protobuf import json_format
from tollgate.v1 import chat_pb2, relay_pb2, relay_pb2_grpc

from tests.support.conformance.outcome import Call, Op, Outcome
from tests.support.grpc_clients import error_details


def chat_outcome(answer: relay_pb2.CreateChatCompletionResponse) -> Outcome:
    return Outcome(
        text=answer.choices[0].message.content,
        completion_tokens=answer.usage.completion_tokens,
        model=answer.model,
    )


def stream_outcome(chunks: Sequence[relay_pb2.StreamChatCompletionResponse], *, cancelled: bool = False) -> Outcome:
    usage = [chunk.usage for chunk in chunks if chunk.HasField("usage")]
    return Outcome(
        text="".join(choice.delta.content for chunk in chunks for choice in chunk.choices),
        completion_tokens=usage[-1].completion_tokens if usage else None,
        model=chunks[0].model if chunks else "",
        chunks=len(chunks),
        cancelled=cancelled,
    )


def models_outcome(answer: relay_pb2.ListModelsResponse) -> Outcome:
    return Outcome(model_ids=frozenset(model.id for model in answer.data))


def embed_outcome(answer: relay_pb2.CreateEmbeddingResponse) -> Outcome:
    return Outcome(vectors=len(answer.data), model=answer.model)


def chat_request(call: Call) -> chat_pb2.ChatCompletionParams:
    return json_format.ParseDict(call.chat_params(), chat_pb2.ChatCompletionParams())


class GrpcDriver:
    """grpc.aio stubs on the server's channel, the API key in `authorization` metadata."""

    door = "grpc"

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._relay = relay_pb2_grpc.RelayServiceStub(channel)

    async def call(self, call: Call) -> Outcome:
        metadata = (("authorization", f"Bearer {call.key}"),)
        chunks: list[relay_pb2.StreamChatCompletionResponse] = []
        try:
            if call.op is Op.CHAT:
                request = relay_pb2.CreateChatCompletionRequest(params=chat_request(call))
                return chat_outcome(await self._relay.CreateChatCompletion(request, metadata=metadata))
            if call.op is Op.MODELS:
                return models_outcome(await self._relay.ListModels(relay_pb2.ListModelsRequest(), metadata=metadata))
            if call.op is Op.EMBED:
                embed = json_format.ParseDict(call.embed_params(), relay_pb2.CreateEmbeddingRequest())
                return embed_outcome(await self._relay.CreateEmbedding(embed, metadata=metadata))
            stream = self._relay.StreamChatCompletion(
                relay_pb2.StreamChatCompletionRequest(params=chat_request(call)), metadata=metadata
            )
            async for chunk in stream:
                chunks.append(chunk)
                if call.cancel_after is not None and len(chunks) >= call.cancel_after:
                    stream.cancel()
                    return stream_outcome(chunks, cancelled=True)
            return stream_outcome(chunks)
        except grpc.aio.AioRpcError as exc:
            info, _ = error_details(exc)
            return Outcome(error=info.reason, grpc_code=exc.code(), chunks=len(chunks))
