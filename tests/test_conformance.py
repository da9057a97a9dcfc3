"""One conformance table through four drivers: REST (openai SDK and raw httpx), gRPC, and the TypeScript client.

The same case must mean the same on every door: the same error code/reason, answer, charge to the micro-dollar
and usage-log rows. Only the envelope differs, and that difference is asserted too: REST drivers check the HTTP
status and the OpenAI error type, gRPC drivers the status code, and `test_status_pairs_follow_the_gateway_table`
ties each case's HTTP status to its gRPC code.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.support.conformance.cases import CASES, HTTP_BY_GRPC, HTTP_BY_REASON, Case
from tests.support.conformance.grpc_door import GrpcDriver
from tests.support.conformance.outcome import Outcome
from tests.support.conformance.rest import OpenAISdkDriver, RawHttpDriver
from tests.support.conformance.runner import Driver, Result, run_case
from tests.support.conformance.typescript import NodeProcess, TypeScriptDriver, build_client
from tests.support.ledger_checks import assert_ledger_invariants
from tests.support.relay_env import RelayEnv, relay_env

DOORS = ("rest-openai", "rest-httpx", "grpc", "typescript")
REST_DOORS = ("rest-openai", "rest-httpx")
FULL_STREAM_MICROS = 1_000  # bound for the cancelled 200-word stream (drained, all of it is billed: ~230 micro-USD)


@pytest.fixture(scope="module")
def node() -> Iterator[NodeProcess]:
    """One Node process for the whole module, however many cases it serves."""
    process = NodeProcess(build_client())
    yield process
    process.close()


def _driver(door: str, env: RelayEnv, request: pytest.FixtureRequest) -> Driver:
    if door == "rest-openai":
        return OpenAISdkDriver(env.running.base_url)
    if door == "rest-httpx":
        return RawHttpDriver(env.running.base_url)
    if door == "grpc":
        return GrpcDriver(env.channel)
    return TypeScriptDriver(request.getfixturevalue("node"), env.running.tollgate.grpc_server.port)


def _expected_outcome(case: Case, door: str, seen: Outcome) -> Outcome:
    """The outcome the case requires on this door; fields a case leaves open are taken from what was seen."""
    failed = bool(case.error)
    on_rest = door in REST_DOORS
    return Outcome(
        error=case.error,
        http_status=case.http_status if on_rest and failed else None,
        grpc_code=case.grpc_code if not on_rest and failed else None,
        error_type=case.error_type if on_rest and failed else None,
        text=seen.text if seen.text.startswith(case.text_prefix) else f"{case.text_prefix}…",
        completion_tokens=case.completion_tokens,
        model=seen.model if failed or case.model_ids else case.model,
        model_ids=seen.model_ids if case.model_ids <= seen.model_ids else case.model_ids,
        vectors=case.vectors,
        chunks=seen.chunks,
        cancelled=case.cancel_after is not None,
    )


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
@pytest.mark.parametrize("door", DOORS)
async def test_case(tmp_path: Path, request: pytest.FixtureRequest, door: str, case: Case) -> None:
    async with relay_env(tmp_path, first_byte=0.5) as env:
        result = await run_case(env, _driver(door, env, request), case, tmp_path / "tollgate.db")
    assert result.outcome == _expected_outcome(case, door, result.outcome)
    assert result.rows == case.rows
    assert result.held_micros == 0
    _assert_charge(case, result)
    assert_ledger_invariants(tmp_path / "tollgate.db")


def _assert_charge(case: Case, result: Result) -> None:
    assert result.spent_micros == sum(result.row_costs)
    if case.charge_micros is not None:
        assert result.spent_micros == case.charge_micros
    else:
        # A cancelled stream (the case's own or the slot holder's): charged once, estimated from what was generated.
        assert 0 < result.spent_micros < FULL_STREAM_MICROS
        assert result.outcome.chunks >= (case.cancel_after or 0)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_status_pairs_follow_the_gateway_table(case: Case) -> None:
    expected_http = HTTP_BY_REASON.get(case.error, HTTP_BY_GRPC[case.grpc_code])
    assert case.http_status == expected_http
    assert (case.grpc_code is grpc.StatusCode.OK) == (not case.error)
