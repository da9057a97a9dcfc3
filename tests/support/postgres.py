"""PostgreSQL for tests: one database per test run, one schema per test (skipped outside CI when absent)."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import pytest

ADMIN_URL = os.environ.get("TOLLGATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _with_database(url: str, database: str, query: str = "") -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", query, ""))


@contextlib.contextmanager
def database_for_this_run() -> Iterator[str]:
    """A new database, dropped afterwards; outside CI a missing server skips the test, in CI it fails it."""
    try:
        admin = psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=2)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI"):
            raise AssertionError(f"PostgreSQL at {ADMIN_URL} is required in CI: {exc}") from exc
        pytest.skip(f"no PostgreSQL reachable at {ADMIN_URL} (set TOLLGATE_TEST_POSTGRES_URL)")
    name = f"tollgate_test_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(ADMIN_URL, name)
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def fresh_schema(database_url: str) -> str:
    """A URL whose connections see only a new, empty schema of the database (a startup option, not session state)."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    parts = urlsplit(database_url)
    return _with_database(database_url, parts.path.lstrip("/"), "options=" + quote(f"-csearch_path={schema}"))
