"""The grpc.aio server: services, health, reflection and the edge interceptor, bound to an address."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from server.interceptors import EdgeInterceptor
from server.services import Servicers

# Larger than the gateway's 8 MiB body cap (plus its protobuf framing): images and documents fit end to end.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
MESSAGE_SIZE_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
]


@dataclasses.dataclass
class GrpcServer:
    """A started server and the port it is bound to."""

    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer

    async def stop(self, grace: float) -> None:
        """Stops accepting calls, reports NOT_SERVING, and lets in-flight calls finish within `grace` seconds."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)


async def start_grpc_server(listen: str, servicers: Servicers, edge: EdgeInterceptor) -> GrpcServer:
    """Registers everything behind `edge`, binds `listen` (port 0 picks one) and starts serving."""
    server = grpc.aio.server(interceptors=[edge], options=MESSAGE_SIZE_OPTIONS)
    service_names = servicers.register(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    _enable_reflection(server, [*service_names, health.SERVICE_NAME])
    port = server.add_insecure_port(listen)
    if port == 0:
        raise OSError(f"cannot bind the gRPC server to {listen}")
    await server.start()
    for name in ("", *service_names):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return GrpcServer(server, port, health_servicer)


def _enable_reflection(server: grpc.aio.Server, service_names: Sequence[str]) -> None:
    reflection.enable_server_reflection([*service_names, reflection.SERVICE_NAME], server)
