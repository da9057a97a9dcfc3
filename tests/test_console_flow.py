"""Issue 3's whole story, once over REST and once over gRPC."""

from __future__ import annotations

import grpc
import openai
import pytest
from tollgate.v1 import account_pb2, relay_pb2, relay_pb2_grpc, token_pb2

from tests.support.inprocess import OPERATOR_KEY, PASSWORD, Running


async def test_story_over_rest(running: Running) -> None:
    operator = running.operator()
    account_id = await running.create_account("alice")
    for _ in range(2):
        credited = await running.http.post(
            f"/api/v1/accounts/{account_id}:credit",
            json={"amount_usd": "10", "reason": "top-up"},
            headers=operator | {"idempotency-key": "topup-1"},
        )
        assert credited.status_code == 200
    session = await running.login("alice")
    assert (await running.http.get("/api/v1/account", headers=session)).json()["balance_usd"] == "10.000000"
    first_id, first_key = await running.create_token(session, name="prod")
    _, second_key = await running.create_token(session, name="staging")
    for key in (first_key, second_key):
        async with openai.AsyncOpenAI(api_key=key, base_url=f"{running.base_url}/v1", max_retries=0) as client:
            assert len([m async for m in client.models.list()]) == 6
    await running.http.delete(f"/api/v1/tokens/{first_id}", headers=session)
    async with openai.AsyncOpenAI(api_key=first_key, base_url=f"{running.base_url}/v1", max_retries=0) as client:
        with pytest.raises(openai.AuthenticationError):
            await client.models.list()
    async with openai.AsyncOpenAI(api_key=second_key, base_url=f"{running.base_url}/v1", max_retries=0) as client:
        assert [m.id async for m in client.models.list()]
    assert (await running.http.get("/api/v1/accounts", headers=session)).status_code == 403
    await running.create_account("bob")
    bob = await running.login("bob")
    assert (await running.http.get(f"/api/v1/tokens/{first_id}", headers=bob)).status_code == 404


async def test_story_over_grpc(running: Running) -> None:
    accounts = running.accounts_stub()
    tokens = running.tokens_stub()
    relay = relay_pb2_grpc.RelayServiceStub(running.channel)
    operator = (("authorization", f"Bearer {OPERATOR_KEY}"),)
    alice = await accounts.CreateAccount(
        account_pb2.CreateAccountRequest(name="alice", password=PASSWORD), metadata=operator
    )
    credit = account_pb2.CreditAccountRequest(account_id=alice.account.id, amount_usd="10", reason="top-up")
    for _ in range(2):
        reply = await accounts.CreditAccount(credit, metadata=(*operator, ("idempotency-key", "topup-1")))
    assert reply.account.balance_micros == 10_000_000
    login = await accounts.CreateSession(account_pb2.CreateSessionRequest(name="alice", password=PASSWORD))
    session = (("authorization", f"Bearer {login.session_token}"),)
    made = [
        await tokens.CreateToken(token_pb2.CreateTokenRequest(token=token_pb2.Token(name=name)), metadata=session)
        for name in ("prod", "staging")
    ]
    for created in made:
        models = await relay.ListModels(
            relay_pb2.ListModelsRequest(), metadata=(("authorization", f"Bearer {created.key}"),)
        )
        assert "claude-haiku-4-5" in [model.id for model in models.data]
    await tokens.DeleteToken(token_pb2.DeleteTokenRequest(token_id=made[0].token.id), metadata=session)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await relay.ListModels(relay_pb2.ListModelsRequest(), metadata=(("authorization", f"Bearer {made[0].key}"),))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    await relay.ListModels(relay_pb2.ListModelsRequest(), metadata=(("authorization", f"Bearer {made[1].key}"),))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await accounts.ListAccounts(account_pb2.ListAccountsRequest(), metadata=session)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    await accounts.CreateAccount(account_pb2.CreateAccountRequest(name="bob", password=PASSWORD), metadata=operator)
    bob_login = await accounts.CreateSession(account_pb2.CreateSessionRequest(name="bob", password=PASSWORD))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await tokens.GetToken(
            token_pb2.GetTokenRequest(token_id=made[1].token.id),
            metadata=(("authorization", f"Bearer {bob_login.session_token}"),),
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
