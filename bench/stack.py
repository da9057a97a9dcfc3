"""The system under test: the fake upstream and `tollgate serve`, each its own pinned process, fresh SQLite."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
import secrets
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from bench.floor import KEY_ENV as _FLOOR_KEY_ENV
from bench.procs import Pinning, child, free_port, wait_for_port

MODEL = "deepseek-chat"
_UPSTREAM_KEY_ENV = "BENCH_FAKE_UPSTREAM_KEY"
RATE_LIMIT = 1_000_000_000
"""Requests and tokens per minute of the bench's token and account: checked on every call, never reached."""
_RATES = ("--rpm", str(RATE_LIMIT), "--tpm", str(RATE_LIMIT))


@dataclasses.dataclass(frozen=True)
class Stack:
    """Where everything listens, the key to call Tollgate with, and the process ids to measure."""

    upstream_port: int
    upstream_key: str
    http_port: int
    grpc_port: int
    api_key: str
    tollgate_pid: int
    upstream_pid: int


@dataclasses.dataclass(frozen=True)
class Floor:
    """Where `python -m bench.floor` listens, and its process id."""

    http_port: int
    grpc_port: int
    pid: int


POSTGRES_ADMIN_URL = os.environ.get("TOLLGATE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TOLLGATE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


@contextlib.contextmanager
def _backends(workdir: Path, backend: str) -> Iterator[str]:
    """The TOML lines choosing the stores: a fresh SQLite file, or a fresh PostgreSQL database and Redis.

    The channel's ceiling is raised past the default 512 so the stream-capacity scenario measures
    Tollgate, not the limit an operator sets for a real upstream. The account's per-minute limits are
    on, as the token's are (`_create_api_key`), and too high to refuse: every call pays for all five checks.
    """
    limits = (
        "[limits]\nchannel_max_concurrency = 10000\n"
        f"account_requests_per_minute = {RATE_LIMIT}\naccount_tokens_per_minute = {RATE_LIMIT}\n"
    )
    if backend == "sqlite":
        yield f'database_url = "sqlite:///{workdir / "tollgate.db"}"\n{limits}'
        return
    name = f"tollgate_bench_{secrets.token_hex(6)}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        parts = urlsplit(POSTGRES_ADMIN_URL)
        url = urlunsplit((parts.scheme, parts.netloc, f"/{name}", "", ""))
        yield f'database_url = "{url}"\nredis_url = "{REDIS_URL}"\n{limits}redis_prefix = "{name}:"\n'
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _config(workdir: Path, upstream_port: int, backends: str) -> Path:
    path = workdir / "tollgate.toml"
    # Tollgate's default log level, as operators run it: one metadata line per relayed call, into its log file.
    path.write_text(
        f"{backends}\n"
        "[[channels]]\n"
        'name = "fake"\n'
        'type = "openai"\n'
        f'base_url = "http://127.0.0.1:{upstream_port}"\n'
        f'api_key_env = "{_UPSTREAM_KEY_ENV}"\n'
        f'models = ["{MODEL}"]\n'
    )
    return path


def _tollgate_argv(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from server.cli import main; sys.exit(main())", *args]


async def _operator(env: dict[str, str], *args: str, stdin: bytes = b"") -> str:
    proc = await asyncio.create_subprocess_exec(
        *_tollgate_argv(*args),
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(stdin), 60)
    text = out.decode()
    if proc.returncode != 0:
        raise RuntimeError(f"tollgate {' '.join(args)} failed: {text}")
    return text


async def _create_api_key(env: dict[str, str]) -> str:
    await _operator(env, "account", "create", "bench", "--password-stdin", stdin=b"bench-password-123\n")
    await _operator(env, "account", "credit", "bench", "1000000", "--reason", "benchmark")
    out = await _operator(
        env, "token", "create", "--account", "bench", "--name", "bench", "--concurrency", "10000", *_RATES
    )
    found = re.search(r"(sk-\S+)", out)
    if found is None:
        raise RuntimeError(f"no API key in: {out}")
    return found.group(1)


@contextlib.asynccontextmanager
async def running_stack(workdir: Path, pinning: Pinning, *, log_dir: Path, backend: str) -> AsyncIterator[Stack]:
    """Starts the fake upstream and Tollgate on `backend`, creates an account with a token, and stops all on exit."""
    upstream_key = "sk-fake-" + secrets.token_hex(8)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    upstream_argv = [sys.executable, "-m", "tests.support.fake_upstream", "--port", "0", "--key", upstream_key]
    upstream_log = log_dir / "upstream.log"
    with _backends(workdir, backend) as backends:
        async with child(
            upstream_argv, env=env, log=upstream_log, pinning=pinning, core=pinning.client_core, capture_stdout=True
        ) as upstream:
            upstream_port = int((await _announced(upstream, r"port (\d+)", "the fake upstream")).group(1))
            http_port, grpc_port = free_port(), free_port()
            tollgate_env = {
                **env,
                "TOLLGATE_CONFIG": str(_config(workdir, upstream_port, backends)),
                "TOLLGATE_ADMIN_KEY": "tgop-bench-" + secrets.token_hex(16),
                "TOLLGATE_HTTP_LISTEN": f"127.0.0.1:{http_port}",
                "TOLLGATE_GRPC_LISTEN": f"127.0.0.1:{grpc_port}",
                _UPSTREAM_KEY_ENV: upstream_key,
            }
            api_key = await _create_api_key(tollgate_env)
            async with child(
                _tollgate_argv("serve"),
                env=tollgate_env,
                log=log_dir / "tollgate.log",
                pinning=pinning,
                core=pinning.tollgate_core,
            ) as tollgate:
                await wait_for_port(http_port, tollgate)
                await wait_for_port(grpc_port, tollgate)
                yield Stack(upstream_port, upstream_key, http_port, grpc_port, api_key, tollgate.pid, upstream.pid)


@contextlib.asynccontextmanager
async def running_floor(stack: Stack, pinning: Pinning, *, log_dir: Path) -> AsyncIterator[Floor]:
    """Starts `python -m bench.floor` on Tollgate's core, relaying to the stack's fake upstream; stops it on exit."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", _FLOOR_KEY_ENV: stack.upstream_key}
    argv = [sys.executable, "-m", "bench.floor", "--upstream-port", str(stack.upstream_port)]
    async with child(
        argv, env=env, log=log_dir / "floor.log", pinning=pinning, core=pinning.tollgate_core, capture_stdout=True
    ) as floor:
        ports = await _announced(floor, r"http (\d+) grpc (\d+)", "the floor")
        yield Floor(int(ports.group(1)), int(ports.group(2)), floor.pid)


async def _announced(proc: asyncio.subprocess.Process, pattern: str, who: str) -> re.Match[str]:
    """The first line a child prints, which must match `pattern` (its ports)."""
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
    found = re.search(pattern, line)
    if found is None:
        raise RuntimeError(f"{who} did not say its ports: {line!r}")
    return found
