"""Several `tollgate serve` processes sharing one database and one Redis, in front of the fake upstream."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import openai

from tests.support.fake_upstream import FakeConfig, FakeUpstream, running_fake_upstream
from tests.support.inprocess import OPERATOR_KEY, PASSWORD
from tests.support.process import TollgateProcess, running_tollgate, tollgate_env
from tests.support.redis_server import unique_prefix
from tests.support.relay_env import CHANNELS, UPSTREAM_KEY


@dataclasses.dataclass
class Replica:
    """One running replica and an HTTP client for it."""

    process: TollgateProcess
    http: httpx.AsyncClient

    def client(self, key: str) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(api_key=key, base_url=f"{self.process.base_url}/v1", max_retries=0)


@dataclasses.dataclass
class Cluster:
    """Replicas over one database and Redis, the fake upstream, and what they were started with."""

    upstream: FakeUpstream
    replicas: list[Replica]
    env: dict[str, str]
    tmp_path: Path

    async def create_user(self, name: str, credit_usd: str, **token_fields: Any) -> tuple[dict[str, str], str]:
        """(console session, API key) of a new account credited with `credit_usd`, through the first replica."""
        http = self.replicas[0].http
        operator = {"authorization": f"Bearer {OPERATOR_KEY}"}
        reply = await http.post("/api/v1/accounts", json={"name": name, "password": PASSWORD}, headers=operator)
        assert reply.status_code == 200, reply.text
        account_id = reply.json()["account"]["id"]
        reply = await http.post(
            f"/api/v1/accounts/{account_id}:credit",
            json={"amount_usd": credit_usd},
            headers=operator | {"idempotency-key": f"credit-{name}"},
        )
        assert reply.status_code == 200, reply.text
        reply = await http.post("/api/v1/sessions", json={"name": name, "password": PASSWORD})
        assert reply.status_code == 200, reply.text
        session = {"authorization": f"Bearer {reply.json()['session_token']}"}
        reply = await http.post("/api/v1/tokens", json={"name": "app", **token_fields}, headers=session)
        assert reply.status_code == 200, reply.text
        return session, str(reply.json()["key"])


@contextlib.asynccontextmanager
async def running_replica(env: dict[str, str]) -> AsyncIterator[Replica]:
    async with (
        running_tollgate(env, timeout=60) as process,
        httpx.AsyncClient(base_url=process.base_url, timeout=30) as http,
    ):
        yield Replica(process, http)


@contextlib.asynccontextmanager
async def running_cluster(
    tmp_path: Path, database_url: str, redis_url: str, *, replicas: int = 2, environ: Mapping[str, str] | None = None
) -> AsyncIterator[Cluster]:
    """`replicas` processes started one after the other (the first migrates the schema)."""
    async with running_fake_upstream(FakeConfig(key=UPSTREAM_KEY)) as upstream:
        config = tmp_path / "tollgate.toml"
        config.write_text(CHANNELS.format(base_url=upstream.base_url, extra="", first_byte=5.0))
        env = tollgate_env(
            tmp_path,
            TOLLGATE_CONFIG=str(config),
            TOLLGATE_DATABASE_URL=database_url,
            TOLLGATE_REDIS_URL=redis_url,
            TOLLGATE_LIMITS_REDIS_PREFIX=unique_prefix(),
            TOLLGATE_LIMITS_REDIS_TIMEOUT_SECONDS="2",  # a loaded test machine is not a Redis outage
            TOLLGATE_LIMITS_REPLICAS=str(replicas),
            TOLLGATE_ADMIN_KEY=OPERATOR_KEY,
            FAKE_UPSTREAM_KEY=UPSTREAM_KEY,
            **(environ or {}),
        )
        async with contextlib.AsyncExitStack() as stack:
            started = [await stack.enter_async_context(running_replica(env)) for _ in range(replicas)]
            yield Cluster(upstream, started, env, tmp_path)
