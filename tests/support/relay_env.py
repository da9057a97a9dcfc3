"""A Tollgate whose channels point at the fake upstream, with an account, credit and a token ready."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import grpc
import openai

from tests.support.fake_upstream import FakeConfig, FakeUpstream, running_fake_upstream
from tests.support.inprocess import Running, running_inprocess

UPSTREAM_KEY = "sk-upstream-secret-0123456789abcdef"

CHANNELS = """
[relay]
first_byte_timeout_seconds = {first_byte}
idle_timeout_seconds = 2
total_timeout_seconds = 5
breaker_failures = 50

[[channels]]
name = "deepseek"
type = "openai"
base_url = "{base_url}"
api_key_env = "FAKE_UPSTREAM_KEY"
models = ["deepseek-chat", "deepseek-reasoner", "text-embedding-3-small"]

[[channels]]
name = "anthropic"
type = "anthropic"
base_url = "{base_url}"
api_key_env = "FAKE_UPSTREAM_KEY"
models = ["claude-haiku-4-5", "claude-sonnet-4-6", "claude-opus-4-7"]
{extra}
"""


@dataclasses.dataclass
class RelayEnv:
    """Tollgate, the fake upstream, and one user's token."""

    running: Running
    upstream: FakeUpstream
    key: str
    session: dict[str, str]
    database: Path | str
    """The SQLite file or the PostgreSQL URL Tollgate stores in."""

    def client(self, **options: object) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            api_key=self.key,
            base_url=f"{self.running.base_url}/v1",
            max_retries=0,
            **options,  # type: ignore[arg-type]
        )

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.key}"),)

    @property
    def channel(self) -> grpc.aio.Channel:
        return self.running.channel


@contextlib.asynccontextmanager
async def relay_env(
    tmp_path: Path,
    *,
    extra_config: str = "",
    first_byte: float = 2.0,
    fake: FakeConfig | None = None,
    environ: Mapping[str, str] | None = None,
    database: Path | str | None = None,
) -> AsyncIterator[RelayEnv]:
    """`database` is a SQLite file or a postgresql:// URL (default: tollgate.db in `tmp_path`)."""
    database = database or tmp_path / "tollgate.db"
    url = database if isinstance(database, str) else f"sqlite:///{database}"
    async with running_fake_upstream(fake or FakeConfig(key=UPSTREAM_KEY)) as upstream:
        config = CHANNELS.format(base_url=upstream.base_url, extra=extra_config, first_byte=first_byte)
        environ = {"FAKE_UPSTREAM_KEY": UPSTREAM_KEY, "TOLLGATE_DATABASE_URL": url, **(environ or {})}
        async with running_inprocess(tmp_path, config, **environ) as running:
            account_id = await running.create_account("user")
            await running.http.post(
                f"/api/v1/accounts/{account_id}:credit",
                json={"amount_usd": "100"},
                headers=running.operator() | {"idempotency-key": "setup"},
            )
            session = await running.login("user")
            _, key = await running.create_token(session)
            yield RelayEnv(running, upstream, key, session, database)
