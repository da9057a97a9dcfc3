"""Console sessions: login, throttling, logout, expiry of access with a disabled account, operator login."""

from __future__ import annotations

from tests.support.inprocess import OPERATOR_KEY, PASSWORD, Running


async def test_login_returns_a_session_that_reaches_console_routes(running: Running) -> None:
    account_id = await running.create_account("alice")
    reply = await running.http.post("/api/v1/sessions", json={"name": "alice", "password": PASSWORD})
    assert reply.status_code == 200
    body = reply.json()
    assert body["session_token"].startswith("tgs-") and len(body["session_token"]) > 40
    assert body["account_id"] == account_id
    assert body["expire_time"].endswith("Z")
    session = {"authorization": f"Bearer {body['session_token']}"}
    balance = await running.http.get("/api/v1/account", headers=session)
    assert balance.status_code == 200
    assert balance.json()["id"] == account_id
    assert balance.json()["available_usd"] == "0.000000"


async def test_wrong_password_and_unknown_name_look_the_same(running: Running) -> None:
    await running.create_account("alice")
    wrong = await running.http.post("/api/v1/sessions", json={"name": "alice", "password": "not the password"})
    unknown = await running.http.post("/api/v1/sessions", json={"name": "mallory", "password": "not the password"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["message"] == unknown.json()["message"]
    assert wrong.json()["details"][0]["reason"] == "invalid_credentials"


async def test_repeated_failures_are_throttled_with_retry_after(running: Running) -> None:
    await running.create_account("alice")
    for _ in range(5):
        reply = await running.http.post("/api/v1/sessions", json={"name": "alice", "password": "guess guess"})
        assert reply.status_code == 401
    reply = await running.http.post("/api/v1/sessions", json={"name": "alice", "password": PASSWORD})
    assert reply.status_code == 429
    assert int(reply.headers["retry-after"]) > 0
    assert reply.json()["details"][0]["reason"] == "too_many_login_attempts"


async def test_logout_ends_the_session(running: Running) -> None:
    await running.create_account("alice")
    session = await running.login("alice")
    assert (await running.http.delete("/api/v1/sessions/current", headers=session)).status_code == 200
    after = await running.http.get("/api/v1/account", headers=session)
    assert after.status_code == 401
    assert after.json()["details"][0]["reason"] == "invalid_session"


async def test_disabling_an_account_ends_its_sessions(running: Running) -> None:
    account_id = await running.create_account("alice")
    session = await running.login("alice")
    await running.http.post(f"/api/v1/accounts/{account_id}:disable", json={}, headers=running.operator())
    assert (await running.http.get("/api/v1/account", headers=session)).status_code == 401
    relogin = await running.http.post("/api/v1/sessions", json={"name": "alice", "password": PASSWORD})
    assert relogin.status_code == 401


async def test_operator_logs_into_the_console_with_the_operator_key(running: Running) -> None:
    reply = await running.http.post("/api/v1/sessions", json={"name": "operator", "password": OPERATOR_KEY})
    assert reply.status_code == 200
    assert reply.json()["account_id"] == ""
    session = {"authorization": f"Bearer {reply.json()['session_token']}"}
    assert (await running.http.get("/api/v1/accounts", headers=session)).status_code == 200
    assert (await running.http.get("/api/v1/tokens", headers=session)).status_code == 403
    assert (await running.http.delete("/api/v1/sessions/current", headers=session)).status_code == 200
    assert (await running.http.get("/api/v1/accounts", headers=session)).status_code == 401
