"""The grpc.aio server over a real channel: health, reflection, the access table and error details."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2
from tollgate.v1 import account_pb2, relay_pb2, relay_pb2_grpc, token_pb2, token_pb2_grpc
from tollgate.v1.account_pb2_grpc import AccountServiceStub

from server.access import ACCESS
from server.auth import operator_key_sha256, sha256_hex
from server.bootstrap import build_domain
from server.config import Config
from server.grpc_server import start_grpc_server
from server.interceptors import EdgeInterceptor
from server.providers.http_client import HttpClient
from server.storage.sqlite import SqliteStore
from tests.support.grpc_clients import health_status, reflected_services
from tests.support.inprocess import OPERATOR_KEY, Running

TOLLGATE_SERVICES = [
    "tollgate.v1.AccountService",
    "tollgate.v1.BillingService",
    "tollgate.v1.RelayService",
    "tollgate.v1.TokenService",
]


@pytest.fixture
def channel(running: Running) -> grpc.aio.Channel:
    return running.channel


def _status(error: grpc.aio.AioRpcError) -> status_pb2.Status:
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            assert isinstance(value, bytes)
            return status_pb2.Status.FromString(value)
    raise AssertionError("no google.rpc.Status details")


def _error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    status = _status(error)
    assert status.code == error.code().value[0]
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    return info


@pytest.mark.parametrize("service", ["", *TOLLGATE_SERVICES])
async def test_health_reports_serving(channel: grpc.aio.Channel, service: str) -> None:
    assert await health_status(channel, service) == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_lists_the_four_services(channel: grpc.aio.Channel) -> None:
    names = await reflected_services(channel)
    assert sorted(name for name in names if name.startswith("tollgate.")) == TOLLGATE_SERVICES
    assert "grpc.health.v1.Health" in names


def test_access_table_names_every_registered_method() -> None:
    from tollgate.v1 import account_pb2 as a
    from tollgate.v1 import billing_pb2 as b
    from tollgate.v1 import relay_pb2 as r
    from tollgate.v1 import token_pb2 as t

    methods = {
        f"/{service.full_name}/{method.name}"
        for module in (a, b, r, t)
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }
    tollgate_entries = {name for name in ACCESS if name.startswith("/tollgate.")}
    assert methods == tollgate_entries


async def test_missing_credential_is_unauthenticated_with_error_info(channel: grpc.aio.Channel) -> None:
    stub = token_pb2_grpc.TokenServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListTokens(token_pb2.ListTokensRequest(), metadata=(("x-request-id", "req-123"),))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    info = _error_info(caught.value)
    assert info.reason == "invalid_api_key"
    assert info.domain == "tollgate"
    assert info.metadata["request_id"] == "req-123"
    assert info.metadata["type"] == "invalid_request_error"


async def test_unknown_credential_is_unauthenticated(channel: grpc.aio.Channel) -> None:
    stub = AccountServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListAccounts(account_pb2.ListAccountsRequest(), metadata=(("authorization", "Bearer nope"),))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "nope" not in (caught.value.details() or "")


async def test_streaming_method_is_guarded_too(channel: grpc.aio.Channel) -> None:
    stub = relay_pb2_grpc.RelayServiceStub(channel)
    call = stub.StreamChatCompletion(relay_pb2.StreamChatCompletionRequest())
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in call:
            pass
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert _error_info(caught.value).reason == "invalid_api_key"


async def test_operator_on_a_console_method_is_permission_denied(channel: grpc.aio.Channel) -> None:
    stub = token_pb2_grpc.TokenServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListTokens(token_pb2.ListTokensRequest(), metadata=(("authorization", f"Bearer {OPERATOR_KEY}"),))
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_operator_reaches_an_operator_method(channel: grpc.aio.Channel) -> None:
    stub = AccountServiceStub(channel)
    reply = await stub.ListAccounts(
        account_pb2.ListAccountsRequest(), metadata=(("authorization", f"Bearer {OPERATOR_KEY}"),)
    )
    assert list(reply.accounts) == []


async def test_public_method_needs_no_credential(channel: grpc.aio.Channel) -> None:
    stub = AccountServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateSession(account_pb2.CreateSessionRequest(name="nobody", password="wrong password"))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert _error_info(caught.value).reason == "invalid_credentials"


async def test_method_missing_from_the_access_table_is_refused(tmp_path: Path) -> None:
    access = {name: roles for name, roles in ACCESS.items() if not name.endswith("/CreateSession")}
    store = await SqliteStore.open(f"sqlite:///{tmp_path}/t.db")
    await store.migrate()
    client = HttpClient()
    domain = build_domain(store, Config(), sha256_hex(OPERATOR_KEY), client)
    edge = EdgeInterceptor(access, domain.authenticator(sha256_hex(OPERATOR_KEY)))
    server = await start_grpc_server("127.0.0.1:0", domain.servicers(), edge)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = AccountServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.CreateSession(account_pb2.CreateSessionRequest(name="a", password="b"))
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
            metadata = (("authorization", f"Bearer {OPERATOR_KEY}"),)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.CreateSession(account_pb2.CreateSessionRequest(name="a", password="b"), metadata=metadata)
            assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    finally:
        await server.stop(0)
        await client.close()
        await store.close()


async def test_operator_key_is_generated_once_and_stored_hashed(tmp_path: Path) -> None:
    store = await SqliteStore.open(f"sqlite:///{tmp_path}/t.db")
    try:
        await store.migrate()
        first_hash, key = await operator_key_sha256(store, "")
        assert key is not None and key.startswith("tgop-") and len(key) > 40
        assert first_hash == sha256_hex(key)
        again_hash, again_key = await operator_key_sha256(store, "")
        assert (again_hash, again_key) == (first_hash, None)
        assert await store.get_setting("operator_key_sha256") == first_hash
        configured_hash, configured_key = await operator_key_sha256(store, "configured")
        assert (configured_hash, configured_key) == (sha256_hex("configured"), None)
    finally:
        await store.close()
