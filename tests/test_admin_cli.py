"""The operator CLI against a real database file: keys and passwords printed once, errors named."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import httpx

from server.storage.migrations import load_migrations
from tests.support.process import TOLLGATE, running_tollgate, tollgate_env
from tests.support.redis_server import shared_redis_url, unique_prefix


def _tollgate(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(TOLLGATE), *args], env=env, input=stdin, capture_output=True, text=True, timeout=60)


async def test_account_credit_debit_and_token_from_the_command_line(tmp_path: Path) -> None:
    env = tollgate_env(tmp_path, TOLLGATE_ADMIN_KEY="cli-operator-key-0123456789")
    created = _tollgate(env, "account", "create", "dora", "--password-stdin", stdin="dora's password\n")
    assert created.returncode == 0, created.stderr
    assert "dora's password" not in created.stdout + created.stderr
    credited = _tollgate(env, "account", "credit", "dora", "7.25", "--reason", "cli", "--idempotency-key", "c-1")
    assert credited.returncode == 0 and "balance 7.250000 USD" in credited.stdout
    again = _tollgate(env, "account", "credit", "dora", "7.25", "--reason", "cli", "--idempotency-key", "c-1")
    assert "balance 7.250000 USD" in again.stdout
    debited = _tollgate(env, "account", "debit", "dora", "2.25", "--reason", "mistaken", "--idempotency-key", "d-1")
    assert debited.returncode == 0 and "debited 2.250000 USD; balance 5.000000 USD" in debited.stdout
    too_much = _tollgate(env, "account", "debit", "dora", "5.01")
    assert too_much.returncode == 2 and "5.000000 USD available" in too_much.stderr
    token = _tollgate(
        env,
        "token",
        "create",
        "--account",
        "dora",
        "--name",
        "cli",
        "--models",
        "deepseek-chat",
        "--rpm",
        "30",
        "--tpm",
        "5000",
    )
    assert token.returncode == 0, token.stderr
    key = token.stdout.split("API key (shown once): ")[1].strip()
    async with running_tollgate(env) as tollgate, httpx.AsyncClient(base_url=tollgate.base_url) as http:
        models = await http.get("/v1/models", headers={"authorization": f"Bearer {key}"})
        assert [m["id"] for m in models.json()["data"]] == ["deepseek-chat"]
        login = await http.post("/api/v1/sessions", json={"name": "dora", "password": "dora's password"})
        assert login.status_code == 200
        session = {"authorization": f"Bearer {login.json()['session_token']}"}
        [listed] = (await http.get("/api/v1/tokens", headers=session)).json()["tokens"]
        assert (listed["requests_per_minute"], listed["tokens_per_minute"]) == (30, 5000)
    assert key not in tollgate.text()


async def test_account_update_from_the_command_line_reaches_a_running_server_at_once(tmp_path: Path) -> None:
    env = tollgate_env(
        tmp_path,
        TOLLGATE_ADMIN_KEY="cli-operator-key-0123456789",
        TOLLGATE_REDIS_URL=shared_redis_url(),
        TOLLGATE_LIMITS_REDIS_PREFIX=unique_prefix(),
        TOLLGATE_AUTH_CACHE_TTL_SECONDS="60",  # the server would keep the key for a minute without the revocation
    )
    _tollgate(env, "account", "create", "hal")
    key = _tollgate(env, "token", "create", "--account", "hal").stdout.split("API key (shown once): ")[1].strip()
    async with running_tollgate(env) as tollgate, httpx.AsyncClient(base_url=tollgate.base_url) as http:

        async def models_status() -> int:
            return (await http.get("/v1/models", headers={"authorization": f"Bearer {key}"})).status_code

        async def becomes(status: int) -> None:
            deadline = time.monotonic() + 1.0
            while await models_status() != status:
                assert time.monotonic() < deadline, f"not {status} within a second"
                await asyncio.sleep(0.05)

        assert await models_status() == 200  # cached now
        disabled = _tollgate(env, "account", "update", "hal", "--disable", "--discount", "0.75")
        assert disabled.returncode == 0, disabled.stderr
        assert "discount 0.75, disabled" in disabled.stdout
        await becomes(401)
        enabled = _tollgate(env, "account", "update", "hal", "--enable")
        assert "discount 0.75, active" in enabled.stdout
        await becomes(200)
    nothing = _tollgate(env, "account", "update", "hal")
    assert nothing.returncode == 2 and "name a change" in nothing.stderr
    both = _tollgate(env, "account", "update", "hal", "--enable", "--disable")
    assert both.returncode == 2


def test_errors_are_named_and_exit_non_zero(tmp_path: Path) -> None:
    env = tollgate_env(tmp_path, TOLLGATE_ADMIN_KEY="cli-operator-key-0123456789")
    missing = _tollgate(env, "token", "create", "--account", "nobody")
    assert missing.returncode == 2 and "no account named 'nobody'" in missing.stderr
    _tollgate(env, "account", "create", "erin")
    negative = _tollgate(env, "account", "credit", "erin", "-5")
    assert negative.returncode == 2 and "must not be negative" in negative.stderr
    negative_rate = _tollgate(env, "token", "create", "--account", "erin", "--rpm", "-1")
    assert negative_rate.returncode == 2 and "requests_per_minute must not be negative" in negative_rate.stderr


def test_generated_password_and_operator_key_are_printed_once(tmp_path: Path) -> None:
    env = tollgate_env(tmp_path)
    first = _tollgate(env, "account", "create", "fay")
    assert "console password (shown once): " in first.stdout
    assert first.stderr.count("generated operator key (shown once)") == 1
    second = _tollgate(env, "account", "create", "gus")
    assert "generated operator key" not in second.stderr


async def test_a_forgotten_password_is_set_again_from_the_command_line(tmp_path: Path) -> None:
    env = tollgate_env(tmp_path, TOLLGATE_ADMIN_KEY="cli-operator-key-0123456789")
    _tollgate(env, "account", "create", "ida", "--password-stdin", stdin="forgotten password\n")
    generated = _tollgate(env, "account", "password", "ida")
    assert generated.returncode == 0, generated.stderr
    password = generated.stdout.split("console password (shown once): ")[1].strip()
    piped = _tollgate(env, "account", "password", "ida", "--password-stdin", stdin="chosen by the operator\n")
    assert "chosen by the operator" not in piped.stdout + piped.stderr
    async with running_tollgate(env) as tollgate, httpx.AsyncClient(base_url=tollgate.base_url) as http:
        for tried, status in (("forgotten password", 401), (password, 401), ("chosen by the operator", 200)):
            login = await http.post("/api/v1/sessions", json={"name": "ida", "password": tried})
            assert login.status_code == status
    short = _tollgate(env, "account", "password", "ida", "--password-stdin", stdin="short\n")
    assert short.returncode == 2 and "password must have 8 to 256 characters" in short.stderr


def test_migrate_brings_the_schema_up_once_and_generates_no_key(tmp_path: Path, database: Path | str) -> None:
    url = database if isinstance(database, str) else f"sqlite:///{database}"
    env = tollgate_env(tmp_path, TOLLGATE_DATABASE_URL=url)
    backend = "postgres" if url.startswith("postgresql:") else "sqlite"
    newest = len(load_migrations(backend))
    for _ in range(2):
        migrated = _tollgate(env, "migrate")
        assert migrated.returncode == 0, migrated.stderr
        assert migrated.stdout == f"database schema at version {newest}\n"
    assert "operator key" not in migrated.stdout + migrated.stderr
