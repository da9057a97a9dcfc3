"""API tokens end to end: the key shown once, caps and allow-lists, partial updates, deletion, isolation."""

from __future__ import annotations

from typing import Any

import grpc
import openai
import pytest
from tollgate.v1 import token_pb2

from tests.support.inprocess import Running


@pytest.fixture
async def alice(running: Running) -> dict[str, str]:
    await running.create_account("alice")
    return await running.login("alice")


async def _models(running: Running, key: str) -> list[str]:
    client = openai.AsyncOpenAI(api_key=key, base_url=f"{running.base_url}/v1", max_retries=0)
    async with client:
        return [model.id async for model in client.models.list()]


async def test_key_is_shown_once_and_stored_masked(running: Running, alice: dict[str, str]) -> None:
    reply = await running.http.post("/api/v1/tokens", json={"name": "web", "spend_cap_usd": "5"}, headers=alice)
    assert reply.status_code == 200
    key = reply.json()["key"]
    token = reply.json()["token"]
    assert key.startswith("sk-") and len(key) >= 35
    assert token["masked_key"] == f"sk-{key[3:7]}…{key[-4:]}"
    assert (token["spend_cap_micros"], token["spent_micros"], token["remaining_cap_micros"]) == (
        5_000_000,
        0,
        5_000_000,
    )
    listed = await running.http.get("/api/v1/tokens", headers=alice)
    got = await running.http.get(f"/api/v1/tokens/{token['id']}", headers=alice)
    for text in (listed.text, got.text):
        assert key not in text and key[3:] not in text
    assert [t["name"] for t in listed.json()["tokens"]] == ["web"]
    assert got.json()["token"]["spend_cap_usd"] == "5.000000"


async def test_tokens_list_models_until_deleted(running: Running, alice: dict[str, str]) -> None:
    first_id, first_key = await running.create_token(alice, name="one")
    _, second_key = await running.create_token(alice, name="two")
    assert "claude-sonnet-4-6" in await _models(running, first_key)
    assert "deepseek-reasoner" in await _models(running, second_key)
    assert (await running.http.delete(f"/api/v1/tokens/{first_id}", headers=alice)).status_code == 200
    with pytest.raises(openai.AuthenticationError) as caught:
        await _models(running, first_key)
    assert caught.value.code == "invalid_api_key"
    assert "deepseek-chat" in await _models(running, second_key)
    assert (await running.http.delete(f"/api/v1/tokens/{first_id}", headers=alice)).status_code == 404


async def test_model_allow_list_filters_and_refuses(running: Running, alice: dict[str, str]) -> None:
    _, key = await running.create_token(alice, allowed_models=["deepseek-chat"])
    assert await _models(running, key) == ["deepseek-chat"]
    reply = await running.http.get("/v1/models/claude-opus-4-7", headers={"authorization": f"Bearer {key}"})
    assert reply.status_code == 403
    assert reply.json()["error"]["code"] == "model_not_allowed"
    reply = await running.http.get("/v1/models/no-such-model", headers={"authorization": f"Bearer {key}"})
    assert reply.status_code == 404
    assert reply.json()["error"] == {
        "message": "the model 'no-such-model' does not exist",
        "type": "invalid_request_error",
        "param": "model",
        "code": "model_not_found",
    }
    allowed = await running.http.get("/v1/models/deepseek-chat", headers={"authorization": f"Bearer {key}"})
    assert allowed.json()["id"] == "deepseek-chat"
    assert allowed.json()["context_window"] == 65_536


async def test_ip_allow_list(running: Running, alice: dict[str, str]) -> None:
    _, outside = await running.create_token(alice, allowed_ips=["10.0.0.0/8"])
    _, inside = await running.create_token(alice, allowed_ips=["127.0.0.1/32", "::1"])
    reply = await running.http.get("/v1/models", headers={"authorization": f"Bearer {outside}"})
    assert reply.status_code == 403
    assert reply.json()["error"]["code"] == "ip_not_allowed"
    assert await _models(running, inside)


async def test_partial_update_changes_only_what_the_body_names(running: Running, alice: dict[str, str]) -> None:
    token_id, key = await running.create_token(alice, name="old", spend_cap_usd="2", max_concurrency=7)
    reply = await running.http.patch(f"/api/v1/tokens/{token_id}", json={"name": "new"}, headers=alice)
    assert reply.status_code == 200
    token = reply.json()["token"]
    assert (token["name"], token["spend_cap_micros"], token["max_concurrency"]) == ("new", 2_000_000, 7)
    reply = await running.http.patch(f"/api/v1/tokens/{token_id}", json={"spendCapUsd": "9.5"}, headers=alice)
    assert reply.json()["token"]["spend_cap_micros"] == 9_500_000
    reply = await running.http.patch(f"/api/v1/tokens/{token_id}", json={"disabled": True}, headers=alice)
    assert reply.json()["token"]["disabled"] is True
    refused = await running.http.get("/v1/models", headers={"authorization": f"Bearer {key}"})
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_api_key"
    await running.http.patch(f"/api/v1/tokens/{token_id}", json={"disabled": False}, headers=alice)
    assert await _models(running, key)


async def test_expired_token_is_refused(running: Running, alice: dict[str, str]) -> None:
    token_id, key = await running.create_token(alice, expire_time="2099-01-01T00:00:00Z")
    assert await _models(running, key)
    await running.http.patch(f"/api/v1/tokens/{token_id}", json={"expire_time": "2020-01-01T00:00:00Z"}, headers=alice)
    reply = await running.http.get("/v1/models", headers={"authorization": f"Bearer {key}"})
    assert reply.status_code == 401
    assert "expired" in reply.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"name": "x", "spend_cap_usd": "-1"}, "spend_cap_usd"),
        ({"name": "x", "spent_micros": 5}, "token.spent_micros"),
        ({"name": "x", "id": "tok_mine"}, "token.id"),
        ({"name": "x", "account_id": "acc_other"}, "token.account_id"),
        ({"name": "x", "allowed_models": ["gpt-9"]}, "allowed_models"),
        ({"name": "x", "allowed_ips": ["not-an-ip"]}, "allowed_ips"),
        ({"name": "x", "expire_time": "2000-01-01T00:00:00Z"}, "expire_time"),
        ({"name": ""}, "name"),
        ({"name": "x", "max_concurrency": -1}, "max_concurrency"),
    ],
)
async def test_bad_tokens_are_refused(
    running: Running, alice: dict[str, str], body: dict[str, Any], param: str
) -> None:
    reply = await running.http.post("/api/v1/tokens", json=body, headers=alice)
    assert reply.status_code == 400
    assert reply.json()["details"][0]["metadata"]["param"] == param
    assert (await running.http.get("/api/v1/tokens", headers=alice)).json()["tokens"] == []


async def test_privileged_fields_are_refused_in_updates(running: Running, alice: dict[str, str]) -> None:
    token_id, _ = await running.create_token(alice)
    reply = await running.http.patch(f"/api/v1/tokens/{token_id}", json={"spent_micros": 0}, headers=alice)
    assert reply.status_code == 400


async def test_other_accounts_tokens_are_not_found(running: Running, alice: dict[str, str]) -> None:
    token_id, key = await running.create_token(alice)
    await running.create_account("bob")
    bob = await running.login("bob")
    for reply in (
        await running.http.get(f"/api/v1/tokens/{token_id}", headers=bob),
        await running.http.patch(f"/api/v1/tokens/{token_id}", json={"name": "mine"}, headers=bob),
        await running.http.delete(f"/api/v1/tokens/{token_id}", headers=bob),
    ):
        assert reply.status_code == 404
    assert (await running.http.get("/api/v1/tokens", headers=bob)).json()["tokens"] == []
    assert await _models(running, key)


async def test_tokens_never_move_money(running: Running, alice: dict[str, str]) -> None:
    account_id = (await running.http.get("/api/v1/account", headers=alice)).json()["id"]
    await running.http.post(
        f"/api/v1/accounts/{account_id}:credit",
        json={"amount_usd": "3"},
        headers=running.operator() | {"idempotency-key": "k1"},
    )
    token_id, _ = await running.create_token(alice, spend_cap_usd="1")
    await running.http.patch(f"/api/v1/tokens/{token_id}", json={"spend_cap_usd": "2"}, headers=alice)
    await running.http.delete(f"/api/v1/tokens/{token_id}", headers=alice)
    assert (await running.http.get("/api/v1/account", headers=alice)).json()["balance_micros"] == 3_000_000


async def test_grpc_update_needs_a_mask_and_pages_work(running: Running, alice: dict[str, str]) -> None:
    stub = running.tokens_stub()
    metadata = tuple(alice.items())
    ids = []
    for index in range(3):
        created = await stub.CreateToken(
            token_pb2.CreateTokenRequest(token=token_pb2.Token(name=f"t{index}")), metadata=metadata
        )
        ids.append(created.token.id)
    first = await stub.ListTokens(token_pb2.ListTokensRequest(page_size=2), metadata=metadata)
    rest = await stub.ListTokens(
        token_pb2.ListTokensRequest(page_size=2, page_token=first.next_page_token), metadata=metadata
    )
    assert [t.id for t in first.tokens] + [t.id for t in rest.tokens] == ids
    assert rest.next_page_token == ""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.UpdateToken(
            token_pb2.UpdateTokenRequest(token_id=ids[0], token=token_pb2.Token(name="x")), metadata=metadata
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    request = token_pb2.UpdateTokenRequest(token_id=ids[0], token=token_pb2.Token(name="renamed"))
    request.update_mask.paths.append("name")
    assert (await stub.UpdateToken(request, metadata=metadata)).token.name == "renamed"
