"""The gRPC servicers: thin adapters that decode a request, call the domain and encode the answer."""

from __future__ import annotations

import dataclasses

import grpc
from tollgate.v1 import account_pb2_grpc, billing_pb2_grpc, relay_pb2_grpc, token_pb2_grpc


@dataclasses.dataclass(frozen=True)
class Servicers:
    """One servicer per Tollgate service, as the composition root built them."""

    relay: relay_pb2_grpc.RelayServiceServicer
    tokens: token_pb2_grpc.TokenServiceServicer
    billing: billing_pb2_grpc.BillingServiceServicer
    accounts: account_pb2_grpc.AccountServiceServicer

    def register(self, server: grpc.aio.Server) -> list[str]:
        """Adds every servicer to `server`; returns the full service names."""
        relay_pb2_grpc.add_RelayServiceServicer_to_server(self.relay, server)
        token_pb2_grpc.add_TokenServiceServicer_to_server(self.tokens, server)
        billing_pb2_grpc.add_BillingServiceServicer_to_server(self.billing, server)
        account_pb2_grpc.add_AccountServiceServicer_to_server(self.accounts, server)
        return [
            "tollgate.v1.RelayService",
            "tollgate.v1.TokenService",
            "tollgate.v1.BillingService",
            "tollgate.v1.AccountService",
        ]
