"""Shared fixtures: a whole Tollgate started in the test's event loop."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.inprocess import Running, running_inprocess
from tests.support.postgres import database_for_this_run, fresh_schema


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    async with running_inprocess(tmp_path) as started:
        yield started


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """One PostgreSQL database for this test run."""
    with database_for_this_run() as url:
        yield url


@pytest.fixture
def postgres_url(postgres_database: str) -> str:
    """A URL of that database whose connections see only a new, empty schema."""
    return fresh_schema(postgres_database)


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Where a Tollgate under test stores: a SQLite file, then a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        return tmp_path / "tollgate.db"
    return str(request.getfixturevalue("postgres_url"))
