"""Shared fixtures: a whole Tollgate started in the test's event loop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.inprocess import Running, running_inprocess


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    async with running_inprocess(tmp_path) as started:
        yield started
