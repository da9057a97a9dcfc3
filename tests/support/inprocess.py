"""A whole Tollgate (gRPC server, gateway, SQLite store) started in the test's event loop."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import httpx
from tollgate.v1 import account_pb2_grpc, token_pb2_grpc

from server.bootstrap import Tollgate, start
from server.config import load_config

OPERATOR_KEY = "tgop-test-operator-key-0123456789"
PASSWORD = "correct horse battery"


@dataclasses.dataclass
class Running:
    """A started Tollgate with clients for both doors."""

    tollgate: Tollgate
    http: httpx.AsyncClient
    channel: grpc.aio.Channel

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.tollgate.http_server.port}"

    def operator(self) -> dict[str, str]:
        return {"authorization": f"Bearer {OPERATOR_KEY}"}

    async def create_account(self, name: str, password: str = PASSWORD) -> str:
        reply = await self.http.post(
            "/api/v1/accounts", json={"name": name, "password": password}, headers=self.operator()
        )
        assert reply.status_code == 200, reply.text
        return str(reply.json()["account"]["id"])

    async def login(self, name: str, password: str = PASSWORD) -> dict[str, str]:
        reply = await self.http.post("/api/v1/sessions", json={"name": name, "password": password})
        assert reply.status_code == 200, reply.text
        return {"authorization": f"Bearer {reply.json()['session_token']}"}

    async def create_token(self, session: dict[str, str], **fields: Any) -> tuple[str, str]:
        """(token id, key) of a new token."""
        reply = await self.http.post("/api/v1/tokens", json={"name": "app", **fields}, headers=session)
        assert reply.status_code == 200, reply.text
        return str(reply.json()["token"]["id"]), str(reply.json()["key"])

    def accounts_stub(self) -> account_pb2_grpc.AccountServiceAsyncStub:
        return account_pb2_grpc.AccountServiceStub(self.channel)

    def tokens_stub(self) -> token_pb2_grpc.TokenServiceAsyncStub:
        return token_pb2_grpc.TokenServiceStub(self.channel)


@contextlib.asynccontextmanager
async def running_inprocess(tmp_path: Path, config: str = "", **environ: str) -> AsyncIterator[Running]:
    """Starts Tollgate on free ports with a fresh SQLite file, a known operator key and the given TOML."""
    config_path = tmp_path / "tollgate.toml"
    config_path.write_text(config)
    env = {
        "TOLLGATE_CONFIG": str(config_path),
        "TOLLGATE_GRPC_LISTEN": "127.0.0.1:0",
        "TOLLGATE_HTTP_LISTEN": "127.0.0.1:0",
        "TOLLGATE_DATABASE_URL": f"sqlite:///{tmp_path}/tollgate.db",
        "TOLLGATE_ADMIN_KEY": OPERATOR_KEY,
        "TOLLGATE_LOG_LEVEL": "warning",
        **environ,
    }
    tollgate = await start(load_config(None, environ=env))
    try:
        async with (
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{tollgate.http_server.port}") as http,
            grpc.aio.insecure_channel(f"127.0.0.1:{tollgate.grpc_server.port}") as channel,
        ):
            yield Running(tollgate, http, channel)
    finally:
        await tollgate.stop(0)
