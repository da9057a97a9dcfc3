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


async def _status(running: Running, session: dict[str, str]) -> int:
    return (await running.http.get("/api/v1/account", headers=session)).status_code


async def _logs_in(running: Running, password: str) -> int:
    reply = await running.http.post("/api/v1/sessions", json={"name": "alice", "password": password})
    return reply.status_code


async def test_a_changed_password_ends_the_other_sessions_and_keeps_this_one(running: Running) -> None:
    await running.create_account("alice")
    here, elsewhere = await running.login("alice"), await running.login("alice")
    _, key = await running.create_token(here)
    change = {"current_password": PASSWORD, "new_password": "a brand new password"}
    reply = await running.http.post("/api/v1/account:changePassword", json=change, headers=here)
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"ended_sessions": 1}
    assert (await _status(running, here), await _status(running, elsewhere)) == (200, 401)
    assert (await _logs_in(running, PASSWORD), await _logs_in(running, "a brand new password")) == (401, 200)
    models = await running.http.get("/v1/models", headers={"authorization": f"Bearer {key}"})
    assert models.status_code == 200  # API keys are not passwords: they keep working


async def test_a_wrong_current_password_changes_nothing_and_counts_as_a_failed_login(running: Running) -> None:
    await running.create_account("alice")
    session = await running.login("alice")
    short = {"current_password": PASSWORD, "new_password": "short"}
    reply = await running.http.post("/api/v1/account:changePassword", json=short, headers=session)
    assert reply.status_code == 400 and reply.json()["details"][0]["metadata"]["param"] == "new_password"
    guess = {"current_password": "a wrong guess", "new_password": "a brand new password"}
    for _ in range(5):
        reply = await running.http.post("/api/v1/account:changePassword", json=guess, headers=session)
        assert reply.status_code == 403, reply.text  # not 401: the session is still good
        assert reply.json()["details"][0]["reason"] == "wrong_password"
    assert await _status(running, session) == 200
    right = {"current_password": PASSWORD, "new_password": "a brand new password"}
    reply = await running.http.post("/api/v1/account:changePassword", json=right, headers=session)
    assert reply.status_code == 429  # five wrong guesses: the name is locked, for this as for logging in
    assert await _logs_in(running, PASSWORD) == 429


async def test_changing_a_password_takes_an_account_s_session(running: Running) -> None:
    await running.create_account("alice")
    _, key = await running.create_token(await running.login("alice"))
    change = {"current_password": PASSWORD, "new_password": "a brand new password"}
    operator = await running.http.post("/api/v1/sessions", json={"name": "operator", "password": OPERATOR_KEY})
    operator_session = {"authorization": f"Bearer {operator.json()['session_token']}"}
    for headers in (operator_session, {"authorization": f"Bearer {key}"}):
        reply = await running.http.post("/api/v1/account:changePassword", json=change, headers=headers)
        assert reply.status_code == 403
    assert await _logs_in(running, PASSWORD) == 200
