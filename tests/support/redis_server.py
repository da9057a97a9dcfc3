"""Redis for tests: the machine's shared server (skipped outside CI when absent) or a private one to kill."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

SHARED_REDIS_URL = os.environ.get("TOLLGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def shared_redis_url() -> str:
    """The shared Redis URL; outside CI a missing server skips the test, in CI it fails it."""
    try:
        redis.Redis.from_url(SHARED_REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        if os.environ.get("CI"):
            raise AssertionError(f"Redis at {SHARED_REDIS_URL} is required in CI: {exc}") from exc
        pytest.skip(f"no Redis at {SHARED_REDIS_URL}")
    return SHARED_REDIS_URL


def unique_prefix() -> str:
    """A key prefix no other test (or other process sharing the server) uses."""
    return f"tollgate-test-{uuid.uuid4().hex[:12]}:"


@contextlib.contextmanager
def private_redis() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A redis-server of the test's own on a free port, so the test can stop it: (url, process)."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI"):
            raise AssertionError("redis-server is required in CI")
        pytest.skip("redis-server is not installed")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(url, socket_connect_timeout=0.2).ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield url, process
    finally:
        process.kill()
        process.wait()
