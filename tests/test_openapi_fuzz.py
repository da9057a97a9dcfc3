"""The served OpenAPI 3.1 document is valid, and schemathesis finds no 500 and no off-document answer on it."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pytest
from openapi_spec_validator import validate

from tests.support.inprocess import running_inprocess

SCHEMATHESIS = Path(sys.executable).parent / "st"


@pytest.mark.parametrize(
    ("caller", "routes"),
    [("session", "^/api/v1/(tokens|usage|pricing|balance)"), ("operator", "^/api/v1/accounts")],
)
async def test_management_routes_hold_to_the_document(tmp_path: Path, caller: str, routes: str) -> None:
    async with running_inprocess(tmp_path) as running:
        await running.create_account("user")
        session = await running.login("user")
        credential = session if caller == "session" else running.operator()
        # Found by schemathesis: a non-ASCII page token was a 500.
        listed = await running.http.get("/api/v1/tokens", params={"page_token": "é"}, headers=session)
        assert listed.status_code == 400, listed.text
        document = await running.http.get("/openapi.json")
        assert document.status_code == 200
        validate(document.json())
        fuzz = await asyncio.create_subprocess_exec(
            str(SCHEMATHESIS),
            "run",
            f"{running.base_url}/openapi.json",
            "--include-path-regex",
            routes,
            "--checks",
            "not_a_server_error,response_schema_conformance",
            "--header",
            f"Authorization: {credential['authorization']}",
            "--max-examples",
            "15",
            "--seed",
            "1",
            "--workers",
            "1",
            cwd=tmp_path,  # its .schemathesis/ cache stays out of the work tree
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await fuzz.communicate()
    report = output.decode()
    assert fuzz.returncode == 0, report[-6000:]
    tested = re.search(r"Tested:\s+(\d+)", report)
    assert tested and int(tested.group(1)) > 0, report[-2000:]
