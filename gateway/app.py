"""The gateway's composition: Tollgate's services, transcoded from their google.api.http bindings."""

from __future__ import annotations

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from google.rpc import status_pb2
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route
from tollgate.v1 import account_pb2, billing_pb2, relay_pb2, token_pb2

from gateway.anthropic.routes import AnthropicRoutes
from gateway.body import DEFAULT_BODY_LIMITS, BodyLimits
from gateway.console import Console
from gateway.logs_csv import LogsExport
from gateway.metrics import MetricsEndpoint
from gateway.openai.errors import openai_error_response
from gateway.openai.routes import OpenAIRoutes
from gateway.transcode_app import create_transcoder_app
from gateway.transcoder import status_response

OPENAI_PREFIX = "/v1/"


def tollgate_services() -> list[ServiceDescriptor]:
    """Every service of the tollgate.v1 contract."""
    return [
        service
        for module in (relay_pb2, token_pb2, billing_pb2, account_pb2)
        for service in module.DESCRIPTOR.services_by_name.values()
    ]


def error_response(path: str, status: status_pb2.Status, headers: dict[str, str]) -> Response:
    """OpenAI's error envelope on the OpenAI-compatible routes, google.rpc.Status JSON elsewhere."""
    if path.startswith(OPENAI_PREFIX):
        return openai_error_response(status, headers)
    return status_response(status, headers)


def create_gateway_app(
    channel: grpc.aio.Channel,
    *,
    request_timeout: float,
    body_limits: BodyLimits = DEFAULT_BODY_LIMITS,
    metrics: MetricsEndpoint | None = None,
) -> Starlette:
    """The REST/SSE edge in front of the gRPC server reached through `channel` (and its metrics, in-process)."""
    openai = OpenAIRoutes(channel, body_limits=body_limits)
    anthropic = AnthropicRoutes(channel, body_limits=body_limits)
    # The OpenAI and Anthropic codecs answer these bindings; the generic transcoder serves every other route.
    openai_routes = [
        Route("/v1/chat/completions", openai.chat_completions, methods=["POST"]),
        Route("/v1/embeddings", openai.embeddings, methods=["POST"]),
        Route("/v1/messages", anthropic.messages, methods=["POST"]),
        Route("/v1/messages/count_tokens", anthropic.count_tokens, methods=["POST"]),
    ]
    console_routes = [
        Route("/api/v1/logs:export", LogsExport(channel, request_timeout=request_timeout).serve, methods=["GET"]),
        *Console().routes(),
    ]
    if metrics is not None:
        openai_routes.append(Route("/metrics", metrics.serve, methods=["GET"]))
    return create_transcoder_app(
        channel,
        tollgate_services(),
        default_timeout=request_timeout,
        error_responder=error_response,
        routes=[*openai_routes, *console_routes],
        body_limits=body_limits,
    )
