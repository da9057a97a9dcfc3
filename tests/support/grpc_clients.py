"""Small clients for the standard gRPC services (their stubs are typed for the sync API only)."""

from __future__ import annotations

from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc


async def health_status(channel: grpc.aio.Channel, service: str = "") -> int:
    """The serving status gRPC health reports for `service`."""
    stub: Any = health_pb2_grpc.HealthStub(channel)
    reply = await stub.Check(health_pb2.HealthCheckRequest(service=service))
    return int(reply.status)


async def reflected_services(channel: grpc.aio.Channel) -> set[str]:
    """The service names gRPC reflection lists."""
    stub: Any = reflection_pb2_grpc.ServerReflectionStub(channel)  # type: ignore[arg-type]
    names: set[str] = set()
    async for reply in stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])):
        names.update(service.name for service in reply.list_services_response.service)
    return names
