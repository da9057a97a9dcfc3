"""`tollgate serve` as a subprocess: starts on free ports, answers REST and gRPC, stops on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2

from gateway.app import tollgate_services
from tests.support.grpc_clients import health_status, reflected_services
from tests.support.process import running_tollgate, tollgate_env


async def test_serve_answers_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    async with running_tollgate(tollgate_env(tmp_path)) as tollgate:
        async with httpx.AsyncClient(base_url=tollgate.base_url) as client:
            document = (await client.get("/openapi.json")).json()
            operations = {
                operation["operationId"] for path in document["paths"].values() for operation in path.values()
            }
            expected = {
                f"{service.name}_{method.name}" for service in tollgate_services() for method in service.methods
            }
            assert operations == expected
            denied = await client.get("/api/v1/tokens")
            assert denied.status_code == 401
            assert denied.json()["details"][0]["reason"] == "invalid_api_key"
        async with grpc.aio.insecure_channel(tollgate.grpc_target) as channel:
            assert await health_status(channel) == health_pb2.HealthCheckResponse.SERVING
            names = await reflected_services(channel)
            assert {f"tollgate.v1.{name}Service" for name in ("Relay", "Token", "Billing", "Account")} <= names
        assert await tollgate.terminate() == 0
    assert "stopped" in tollgate.text()


async def test_operator_key_is_printed_once_and_works(tmp_path: Path) -> None:
    env = tollgate_env(tmp_path)
    async with running_tollgate(env) as first:
        printed = [line for line in first.output if "generated operator key" in line]
        assert len(printed) == 1
        key = printed[0].rsplit(" ", 1)[1].strip()
        async with httpx.AsyncClient(base_url=first.base_url) as client:
            reply = await client.get("/api/v1/accounts", headers={"authorization": f"Bearer {key}"})
            assert reply.status_code == 200
            wrong = await client.get("/api/v1/accounts", headers={"authorization": "Bearer tgop-wrong"})
            assert wrong.status_code == 401
    async with running_tollgate(env) as second:
        assert "generated operator key" not in second.text()
        async with httpx.AsyncClient(base_url=second.base_url) as client:
            reply = await client.get("/api/v1/accounts", headers={"authorization": f"Bearer {key}"})
            assert reply.status_code == 200


async def test_configured_admin_key_is_never_printed(tmp_path: Path) -> None:
    env = tollgate_env(tmp_path, TOLLGATE_ADMIN_KEY="configured-operator-key")
    async with running_tollgate(env) as tollgate:
        async with httpx.AsyncClient(base_url=tollgate.base_url) as client:
            reply = await client.get("/api/v1/accounts", headers={"authorization": "Bearer configured-operator-key"})
            assert reply.status_code == 200
    assert "configured-operator-key" not in tollgate.text()
    assert "generated operator key" not in tollgate.text()


async def test_bad_configuration_exits_with_a_message(tmp_path: Path) -> None:
    env = tollgate_env(tmp_path, TOLLGATE_DATABASE_URL="mysql://nope")
    with pytest.raises(RuntimeError, match="database_url must be"):
        async with running_tollgate(env, timeout=10):
            pass


async def test_gateway_alone_in_front_of_a_remote_server(tmp_path: Path) -> None:
    env = tollgate_env(tmp_path, TOLLGATE_ADMIN_KEY="remote-operator-key-0123456789")
    async with running_tollgate(env) as backend:
        command = ("gateway", "--grpc-target", backend.grpc_target)
        async with (
            running_tollgate(env, command=command) as gateway,
            httpx.AsyncClient(base_url=gateway.base_url) as http,
        ):
            assert gateway.http_port != backend.http_port
            created = await http.post(
                "/api/v1/accounts",
                json={"name": "remote", "password": "a long password"},
                headers={"authorization": "Bearer remote-operator-key-0123456789"},
            )
            assert created.status_code == 200
            assert (await http.get("/openapi.json")).status_code == 200
        assert await gateway.terminate() == 0


async def test_sigterm_lets_an_in_flight_call_finish(tmp_path: Path) -> None:
    env = tollgate_env(tmp_path, TOLLGATE_ADMIN_KEY="drain-operator-key-0123456789")
    async with running_tollgate(env) as tollgate, httpx.AsyncClient(base_url=tollgate.base_url) as http:
        await http.post(
            "/api/v1/accounts",
            json={"name": "drain", "password": "a long password"},
            headers={"authorization": "Bearer drain-operator-key-0123456789"},
        )
        # A login verifies an argon2 hash off the loop: slow enough to be in flight when SIGTERM lands.
        login = asyncio.create_task(
            http.post("/api/v1/sessions", json={"name": "drain", "password": "a long password"})
        )
        await asyncio.sleep(0.02)
        tollgate.process.send_signal(signal.SIGTERM)
        reply = await login
        assert reply.status_code == 200
        assert await tollgate.terminate() == 0
        with pytest.raises(httpx.ConnectError):
            await http.get("/openapi.json")
