"""Canary secrets: planted, pushed through every error path, then looked for in logs, bodies and the database."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx

from server.auth import sha256_hex
from tests.support.process import running_tollgate, tollgate_env

ADMIN_KEY = "CANARYadminKEY0123456789abcdef"
PASSWORD = "CANARYpassword-alice-9876"
NEW_PASSWORD = "CANARYpassword-changed-5432"
RESET_PASSWORD = "CANARYpassword-reset-1098"


async def test_secrets_never_reach_logs_bodies_or_the_database(tmp_path: Path) -> None:
    env = tollgate_env(tmp_path, TOLLGATE_ADMIN_KEY=ADMIN_KEY, TOLLGATE_LOG_LEVEL="debug")
    bodies: list[str] = []
    async with running_tollgate(env) as tollgate, httpx.AsyncClient(base_url=tollgate.base_url) as http:
        operator = {"authorization": f"Bearer {ADMIN_KEY}"}

        async def call(
            method: str, path: str, headers: dict[str, str] | None = None, **kwargs: object
        ) -> httpx.Response:
            reply = await http.request(method, path, headers=headers, **kwargs)  # type: ignore[arg-type]
            bodies.append(reply.text)
            return reply

        account = await call("POST", "/api/v1/accounts", operator, json={"name": "alice", "password": PASSWORD})
        account_id = account.json()["account"]["id"]
        login = await http.post("/api/v1/sessions", json={"name": "alice", "password": PASSWORD})
        session_token = login.json()["session_token"]
        session = {"authorization": f"Bearer {session_token}"}
        created = await http.post("/api/v1/tokens", json={"name": "app"}, headers=session)
        key, token_id = created.json()["key"], created.json()["token"]["id"]
        api = {"authorization": f"Bearer {key}"}

        # Every kind of refusal, with the real secrets in play.
        await call("POST", "/api/v1/sessions", json={"name": "alice", "password": PASSWORD + "x"})
        await call("POST", "/api/v1/sessions", json={"name": "nobody", "password": PASSWORD})
        await call("GET", "/api/v1/accounts", session)
        await call("GET", "/api/v1/accounts", api)
        await call("GET", "/api/v1/tokens", api)
        await call("GET", "/v1/models", session)
        await call("GET", "/v1/models", {"authorization": f"Bearer {key}x"})
        await call("GET", "/v1/models", {"authorization": f"Bearer {session_token}x"})
        await call("GET", "/v1/models", {"authorization": f"Bearer {ADMIN_KEY}x"})
        await call("GET", "/api/v1/accounts", {"authorization": f"Basic {ADMIN_KEY}"})
        await call("POST", "/api/v1/tokens", session, content=f'{{"name": "{key}", bad json')
        await call("POST", f"/api/v1/accounts/{account_id}:credit", operator, json={"amount_usd": PASSWORD})
        change = {"current_password": PASSWORD + "x", "new_password": NEW_PASSWORD}
        await call("POST", "/api/v1/account:changePassword", session, json=change)  # wrong current password
        await call("POST", "/api/v1/account:changePassword", session, json={**change, "current_password": PASSWORD})
        await call("POST", "/api/v1/account:changePassword", session, json={"current_password": NEW_PASSWORD})
        await call("POST", f"/api/v1/accounts/{account_id}:setPassword", session, json={"password": RESET_PASSWORD})
        await call("POST", f"/api/v1/accounts/{account_id}:setPassword", operator, json={"password": "short"})
        await call("POST", f"/api/v1/accounts/{account_id}:setPassword", operator, json={"password": RESET_PASSWORD})
        await call("GET", "/v1/models/claude-opus-4-7", api)
        await call("GET", "/v1/models", api)
        await call("DELETE", f"/api/v1/tokens/{token_id}", session)
        await call("GET", "/v1/models", api)
        await call("DELETE", "/api/v1/sessions/current", session)
        await call("GET", "/api/v1/tokens", session)
        await call("GET", "/api/v1/account", session)

    secrets = {
        "operator key": ADMIN_KEY,
        "password": PASSWORD,
        "new password": NEW_PASSWORD,
        "reset password": RESET_PASSWORD,
        "session token": session_token,
        "API key": key,
        "API key body": key[3:],
        "API key hash": sha256_hex(key),
        "session hash": sha256_hex(session_token),
    }
    logs = tollgate.text()
    for name, secret in secrets.items():
        assert secret not in logs, f"{name} in the logs"
        for body in bodies:
            assert secret not in body, f"{name} in a response: {body}"
    connection = sqlite3.connect(tmp_path / "tollgate.db")
    dump = "\n".join(connection.iterdump())
    connection.close()
    for name in (
        "operator key",
        "password",
        "new password",
        "reset password",
        "session token",
        "API key",
        "API key body",
    ):
        assert secrets[name] not in dump, f"{name} in the database"
    assert sha256_hex(key) in dump  # looked up by its hash, which is all that is kept
