"""The operator's accounts, credits and debits over REST and gRPC: idempotency, ledger entries, errors."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import httpx
import pytest
from tollgate.v1 import account_pb2

from tests.support.grpc_clients import error_details
from tests.support.inprocess import OPERATOR_KEY, PASSWORD, Running

OPERATOR_METADATA = (("authorization", f"Bearer {OPERATOR_KEY}"),)


async def _move(
    running: Running, action: str, account_id: str, key: str | None, **body: str
) -> tuple[int, dict[str, Any]]:
    """POST :credit or :debit (`action`) with the Idempotency-Key `key`."""
    headers = running.operator() | ({"idempotency-key": key} if key is not None else {})
    reply = await running.http.post(f"/api/v1/accounts/{account_id}:{action}", json=body, headers=headers)
    return reply.status_code, reply.json()


async def _credit(running: Running, account_id: str, key: str | None, **body: str) -> tuple[int, dict[str, Any]]:
    return await _move(running, "credit", account_id, key, **body)


async def _balance(running: Running, account_id: str) -> int:
    reply = await running.http.get(f"/api/v1/accounts/{account_id}", headers=running.operator())
    return int(reply.json()["account"]["balance_micros"])


async def test_create_get_list_and_disable_over_rest(running: Running) -> None:
    account_id = await running.create_account("alice")
    got = (await running.http.get(f"/api/v1/accounts/{account_id}", headers=running.operator())).json()["account"]
    assert got["name"] == "alice"
    assert got["balance_micros"] == 0 and got["balance_usd"] == "0.000000"
    assert got["disabled"] is False
    assert "password" not in str(got)
    await running.create_account("bob")
    listed = (await running.http.get("/api/v1/accounts", headers=running.operator())).json()
    assert [a["name"] for a in listed["accounts"]] == ["alice", "bob"]
    page = (await running.http.get("/api/v1/accounts?page_size=1", headers=running.operator())).json()
    assert [a["name"] for a in page["accounts"]] == ["alice"]
    rest = await running.http.get(
        f"/api/v1/accounts?page_size=1&page_token={page['next_page_token']}", headers=running.operator()
    )
    assert [a["name"] for a in rest.json()["accounts"]] == ["bob"]
    disabled = await running.http.post(f"/api/v1/accounts/{account_id}:disable", json={}, headers=running.operator())
    assert disabled.json()["account"]["disabled"] is True


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"name": "x y", "password": "long enough pass"}, 400, "name"),
        ({"name": "operator", "password": "long enough pass"}, 400, "name"),
        ({"name": "short", "password": "short"}, 400, "password"),
        ({"name": "disc", "password": "long enough pass", "discount": "-1"}, 400, "discount"),
    ],
)
async def test_bad_accounts_are_refused(running: Running, body: dict[str, str], status: int, param: str) -> None:
    reply = await running.http.post("/api/v1/accounts", json=body, headers=running.operator())
    assert reply.status_code == status
    assert reply.json()["details"][0]["metadata"]["param"] == param


async def test_duplicate_name_is_already_exists(running: Running) -> None:
    await running.create_account("alice")
    reply = await running.http.post(
        "/api/v1/accounts", json={"name": "alice", "password": "another password"}, headers=running.operator()
    )
    assert reply.status_code == 409
    assert reply.json()["details"][0]["reason"] == "already_exists"


async def test_credit_is_idempotent_and_recorded(running: Running) -> None:
    account_id = await running.create_account("alice")
    status, first = await _credit(running, account_id, "pay-1", amount_usd="25.50", reason="invoice 7")
    assert status == 200
    assert first["account"]["balance_micros"] == 25_500_000
    assert first["account"]["balance_usd"] == "25.500000"
    entry = first["entry"]
    assert (entry["kind"], entry["amount_micros"], entry["actor"], entry["reason"]) == (
        "credit",
        25_500_000,
        "operator",
        "invoice 7",
    )
    assert entry["create_time"].endswith("Z")
    status, again = await _credit(running, account_id, "pay-1", amount_usd="25.50", reason="invoice 7")
    assert status == 200
    assert again["entry"] == entry
    assert again["account"]["balance_micros"] == 25_500_000
    status, reused = await _credit(running, account_id, "pay-1", amount_usd="30", reason="invoice 7")
    assert status == 422
    assert reused["details"][0]["reason"] == "idempotency_key_reused"
    status, other = await _credit(running, account_id, "pay-2", amount_usd="0.000001")
    assert status == 200 and other["account"]["balance_micros"] == 25_500_001


async def test_concurrent_duplicates_credit_once(running: Running) -> None:
    account_id = await running.create_account("alice")
    results = await asyncio.gather(*(_credit(running, account_id, "same-key", amount_usd="1") for _ in range(10)))
    statuses = sorted(status for status, _ in results)
    assert set(statuses) <= {200, 409}
    entries = {body["entry"]["id"] for status, body in results if status == 200}
    assert len(entries) == 1
    got = (await running.http.get(f"/api/v1/accounts/{account_id}", headers=running.operator())).json()
    assert got["account"]["balance_micros"] == 1_000_000


@pytest.mark.parametrize("action", ["credit", "debit"])
@pytest.mark.parametrize(
    ("key", "amount", "status", "param"),
    [
        (None, "1", 400, "idempotency_key"),
        ("k", "-1", 400, "amount_usd"),
        ("k", "0", 400, "amount_usd"),
        ("k", "1.0000001", 400, "amount_usd"),
        ("k", "ten", 400, "amount_usd"),
        ("k", "1e30", 400, "amount_usd"),
    ],
)
async def test_bad_credits_and_debits_change_nothing(
    running: Running, action: str, key: str | None, amount: str, status: int, param: str
) -> None:
    account_id = await running.create_account("alice")
    assert (await _credit(running, account_id, "setup", amount_usd="5"))[0] == 200
    got_status, body = await _move(running, action, account_id, key, amount_usd=amount)
    assert got_status == status
    assert body["details"][0]["metadata"]["param"] == param
    assert await _balance(running, account_id) == 5_000_000


@pytest.mark.parametrize("action", ["credit", "debit"])
async def test_credit_or_debit_of_an_unknown_account_is_not_found(running: Running, action: str) -> None:
    status, body = await _move(running, action, "acc_nope", "k", amount_usd="1")
    assert status == 404
    assert body["details"][0]["reason"] == "not_found"


async def test_a_debit_takes_money_back_once_per_key_and_never_below_zero(running: Running) -> None:
    account_id = await running.create_account("alice")
    assert (await _credit(running, account_id, "pay-1", amount_usd="10", reason="invoice 8"))[0] == 200
    status, first = await _move(running, "debit", account_id, "undo-1", amount_usd="4.25", reason="mistaken credit")
    assert status == 200, first
    entry = first["entry"]
    assert (entry["kind"], entry["amount_micros"], entry["amount_usd"], entry["actor"], entry["reason"]) == (
        "debit",
        -4_250_000,
        "-4.250000",
        "operator",
        "mistaken credit",
    )
    assert first["account"]["balance_micros"] == 5_750_000
    status, again = await _move(running, "debit", account_id, "undo-1", amount_usd="4.25", reason="mistaken credit")
    assert (status, again["entry"], again["account"]["balance_micros"]) == (200, entry, 5_750_000)
    for key, amount in (("undo-1", "4"), ("pay-1", "10")):  # another body, or a credit's key: keys are shared
        status, reused = await _move(running, "debit", account_id, key, amount_usd=amount, reason="invoice 8")
        assert (status, reused["details"][0]["reason"]) == (422, "idempotency_key_reused")
    status, refused = await _move(running, "debit", account_id, "undo-2", amount_usd="5.750001")
    assert (status, refused["details"][0]["reason"]) == (400, "insufficient_balance")
    assert "5.750000 USD available" in refused["message"]
    status, rest = await _move(running, "debit", account_id, "undo-2", amount_usd="5.75")
    assert (status, rest["account"]["balance_micros"]) == (200, 0)  # a refused request does not use its key up
    assert await _balance(running, account_id) == 0


async def test_the_ledger_lists_credits_and_debits_newest_first_to_the_account_and_the_operator(
    running: Running,
) -> None:
    alice = await running.create_account("alice")
    other = await running.create_account("bob")
    for key, action, amount in (("a-1", "credit", "10"), ("a-2", "debit", "2.5"), ("a-3", "credit", "1")):
        assert (await _move(running, action, alice, key, amount_usd=amount, reason=key))[0] == 200
    assert (await _credit(running, other, "b-1", amount_usd="7"))[0] == 200
    session = await running.login("alice")
    first = (await running.http.get("/api/v1/ledger?page_size=2", headers=session)).json()
    assert [(e["kind"], e["amount_usd"], e["reason"]) for e in first["entries"]] == [
        ("credit", "1.000000", "a-3"),
        ("debit", "-2.500000", "a-2"),
    ]
    rest = await running.http.get(f"/api/v1/ledger?page_token={first['next_page_token']}", headers=session)
    assert [(e["reason"], e["actor"]) for e in rest.json()["entries"]] == [("a-1", "operator")]
    assert rest.json()["next_page_token"] == ""
    mine = await running.http.get(f"/api/v1/ledger?account_id={alice}", headers=session)
    assert len(mine.json()["entries"]) == 3
    theirs = await running.http.get(f"/api/v1/ledger?account_id={other}", headers=session)
    assert (theirs.status_code, theirs.json()["details"][0]["reason"]) == (404, "not_found")
    operator = await running.http.get(f"/api/v1/ledger?account_id={other}", headers=running.operator())
    assert [e["amount_micros"] for e in operator.json()["entries"]] == [7_000_000]
    unnamed = await running.http.get("/api/v1/ledger", headers=running.operator())
    assert (unnamed.status_code, unnamed.json()["details"][0]["metadata"]["param"]) == (400, "account_id")


async def test_the_same_over_grpc(running: Running) -> None:
    stub = running.accounts_stub()
    created = await stub.CreateAccount(
        account_pb2.CreateAccountRequest(name="carol", password="a good password"), metadata=OPERATOR_METADATA
    )
    account_id = created.account.id
    request = account_pb2.CreditAccountRequest(account_id=account_id, amount_usd="2", reason="grpc")
    metadata = (*OPERATOR_METADATA, ("idempotency-key", "grpc-1"))
    first = await stub.CreditAccount(request, metadata=metadata)
    second = await stub.CreditAccount(request, metadata=metadata)
    assert first.entry.id == second.entry.id
    assert second.account.balance_micros == 2_000_000
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreditAccount(
            account_pb2.CreditAccountRequest(account_id=account_id, amount_usd="3"), metadata=metadata
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetAccount(account_pb2.GetAccountRequest(account_id="acc_missing"), metadata=OPERATOR_METADATA)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    debit = account_pb2.DebitAccountRequest(account_id=account_id, amount_usd="0.5", reason="grpc")
    taken = await stub.DebitAccount(debit, metadata=(*OPERATOR_METADATA, ("idempotency-key", "grpc-2")))
    assert (taken.entry.kind, taken.entry.amount_micros, taken.account.balance_micros) == ("debit", -500_000, 1_500_000)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        too_much = account_pb2.DebitAccountRequest(account_id=account_id, amount_usd="2")
        await stub.DebitAccount(too_much, metadata=(*OPERATOR_METADATA, ("idempotency-key", "grpc-3")))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_details(caught.value)[0].reason == "insufficient_balance"


async def test_the_operator_changes_the_discount_and_enables_a_disabled_account(running: Running) -> None:
    account_id = await running.create_account("alice")
    _, key = await running.create_token(await running.login("alice"))
    path, operator = f"/api/v1/accounts/{account_id}", running.operator()

    async def models_status() -> int:
        return (await running.http.get("/v1/models", headers={"authorization": f"Bearer {key}"})).status_code

    assert await models_status() == 200
    changed = await running.http.patch(path, json={"discount": "0.80"}, headers=operator)
    assert changed.status_code == 200, changed.text
    assert (changed.json()["account"]["discount"], changed.json()["account"]["disabled"]) == ("0.8", False)
    disabled = await running.http.patch(path, json={"disabled": True}, headers=operator)
    assert disabled.json()["account"]["disabled"] is True
    assert await models_status() == 401  # at once: the key's cached look-up was dropped
    assert (
        await running.http.post("/api/v1/sessions", json={"name": "alice", "password": PASSWORD})
    ).status_code == 401
    enabled = await running.http.patch(path, json={"disabled": False}, headers=operator)
    assert enabled.json()["account"]["disabled"] is False
    assert await models_status() == 200
    assert enabled.json()["account"]["discount"] == "0.8"


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"balance_micros": 10**9}, 400, "update_mask"),
        ({"name": "bob"}, 400, "update_mask"),
        ({"id": "acc_other"}, 400, "account.id"),
        ({"discount": "0"}, 400, "discount"),
        ({"discount": "ninety"}, 400, "discount"),
        ({}, 400, "update_mask"),
    ],
)
async def test_bad_account_updates_change_nothing(
    running: Running, body: dict[str, Any], status: int, param: str
) -> None:
    account_id = await running.create_account("alice")
    path = f"/api/v1/accounts/{account_id}"
    before = (await running.http.get(path, headers=running.operator())).json()
    reply = await running.http.patch(path, json=body, headers=running.operator())
    assert reply.status_code == status, reply.text
    assert reply.json()["details"][0]["metadata"]["param"] == param
    assert (await running.http.get(path, headers=running.operator())).json() == before


async def test_account_updates_are_the_operator_s_and_need_an_account(running: Running) -> None:
    account_id = await running.create_account("alice")
    session = await running.login("alice")
    mine = await running.http.patch(f"/api/v1/accounts/{account_id}", json={"discount": "0.1"}, headers=session)
    assert mine.status_code == 403
    missing = await running.http.patch(
        "/api/v1/accounts/acc_nope", json={"discount": "0.9"}, headers=running.operator()
    )
    assert missing.status_code == 404


async def test_account_updates_over_grpc_name_their_fields(running: Running) -> None:
    stub = running.accounts_stub()
    account_id = await running.create_account("carol")
    account = account_pb2.Account(discount="0.75", disabled=True)
    with pytest.raises(grpc.aio.AioRpcError) as caught:  # no mask: over gRPC nothing is inferred
        await stub.UpdateAccount(
            account_pb2.UpdateAccountRequest(account_id=account_id, account=account), metadata=OPERATOR_METADATA
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    request = account_pb2.UpdateAccountRequest(account_id=account_id, account=account)
    request.update_mask.paths.append("discount")
    updated = await stub.UpdateAccount(request, metadata=OPERATOR_METADATA)
    assert (updated.account.discount, updated.account.disabled) == ("0.75", False)  # only the masked field


async def test_the_operator_sets_a_forgotten_password_and_the_account_s_sessions_end(running: Running) -> None:
    account_id = await running.create_account("alice")
    session = await running.login("alice")
    _, key = await running.create_token(session)
    path = f"/api/v1/accounts/{account_id}:setPassword"
    short = await running.http.post(path, json={"password": "short"}, headers=running.operator())
    assert short.status_code == 400 and short.json()["details"][0]["metadata"]["param"] == "password"
    assert (await running.http.get("/api/v1/account", headers=session)).status_code == 200
    reply = await running.http.post(path, json={"password": "set by the operator"}, headers=running.operator())
    assert reply.status_code == 200 and reply.json() == {"ended_sessions": 1}
    assert (await running.http.get("/api/v1/account", headers=session)).status_code == 401
    assert (await running.http.get("/v1/models", headers={"authorization": f"Bearer {key}"})).status_code == 200
    old = await running.http.post("/api/v1/sessions", json={"name": "alice", "password": PASSWORD})
    new = await running.http.post("/api/v1/sessions", json={"name": "alice", "password": "set by the operator"})
    assert (old.status_code, new.status_code) == (401, 200)
    mine = await running.http.post(path, json={"password": "not mine to set"}, headers=session)
    assert mine.status_code == 401  # that session ended; a live one is refused too:
    live = {"authorization": f"Bearer {new.json()['session_token']}"}
    assert (await running.http.post(path, json={"password": "not mine to set"}, headers=live)).status_code == 403
    elsewhere = httpx.AsyncHTTPTransport(local_address="127.0.0.2")  # another address, locked out on its own
    async with httpx.AsyncClient(base_url=running.base_url, transport=elsewhere) as guesser:
        for _ in range(5):  # the owner forgets it again, and locks the name out
            await guesser.post("/api/v1/sessions", json={"name": "alice", "password": "forgotten again"})
        locked = await running.http.post("/api/v1/sessions", json={"name": "alice", "password": "set by the operator"})
        assert locked.status_code == 429
        reply = await running.http.post(path, json={"password": "set once more"}, headers=running.operator())
        assert reply.status_code == 200  # and the name's lock-out ends with it
        again = await running.http.post("/api/v1/sessions", json={"name": "alice", "password": "set once more"})
        assert again.status_code == 200
        from_there = await guesser.post("/api/v1/sessions", json={"name": "alice", "password": "set once more"})
        assert from_there.status_code == 429  # the address's does not: it may be someone else's
    missing = "/api/v1/accounts/acc_nope:setPassword"
    assert (
        await running.http.post(missing, json={"password": "long enough"}, headers=running.operator())
    ).status_code == 404


async def test_passwords_over_grpc(running: Running) -> None:
    stub = running.accounts_stub()
    account_id = await running.create_account("dave")
    reply = await stub.SetAccountPassword(
        account_pb2.SetAccountPasswordRequest(account_id=account_id, password="set over grpc"),
        metadata=OPERATOR_METADATA,
    )
    assert reply.ended_sessions == 0
    session = await running.login("dave", "set over grpc")
    changed = await stub.ChangePassword(
        account_pb2.ChangePasswordRequest(current_password="set over grpc", new_password="changed over grpc"),
        metadata=(("authorization", session["authorization"]),),
    )
    assert changed.ended_sessions == 0
    await running.login("dave", "changed over grpc")
