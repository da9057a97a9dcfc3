"""The access table walked end to end: every REST route and gRPC method, with each kind of credential."""

from __future__ import annotations

import re
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from gateway.app import tollgate_services
from gateway.routing import Route, RouteTable
from server.access import ACCESS, Role
from tests.support.inprocess import OPERATOR_KEY, Running

DENIED_REASONS = {"invalid_api_key", "invalid_session", "wrong_credential_kind"}
ROUTES = sorted(
    RouteTable.from_services(tollgate_services()).routes,
    # Logging out ends the session the walk uses: do it last.
    key=lambda route: route.grpc_method.endswith("/DeleteSession"),
)


@pytest.fixture
async def credentials(running: Running) -> dict[Role, str | None]:
    await running.create_account("walker")
    session = (await running.login("walker"))["authorization"]
    _, key = await running.create_token({"authorization": session})
    return {
        Role.PUBLIC: None,
        Role.API_TOKEN: f"Bearer {key}",
        Role.SESSION: session,
        Role.OPERATOR: f"Bearer {OPERATOR_KEY}",
    }


# The OpenAI routes validate their body at the edge: give them valid ones, so the server judges the key.
BODIES = {
    "/v1/chat/completions": {"model": "deepseek-chat", "messages": [{"role": "user", "content": "hi"}]},
    "/v1/embeddings": {"model": "text-embedding-3-small", "input": "hi"},
    "/v1/messages": {"model": "deepseek-chat", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
    "/v1/messages/count_tokens": {"model": "deepseek-chat", "messages": [{"role": "user", "content": "hi"}]},
}
# Anthropic's error shape has a type but no code: these types are what a refused credential becomes.
ANTHROPIC_DENIALS = {"authentication_error": "invalid_api_key", "permission_error": "wrong_credential_kind"}


def _path(route: Route) -> str:
    return re.sub(r"\{[^}]*\}", "x", route.template.source)


def _rest_reason(reply: Any) -> str:
    body = reply.json()
    if body.get("type") == "error":
        return ANTHROPIC_DENIALS.get(body["error"]["type"], "")
    if "error" in body:
        return str(body["error"].get("code") or "")
    details = body.get("details") or [{}]
    return str(details[0].get("reason", ""))


def test_every_route_is_in_the_access_table() -> None:
    assert {route.grpc_method for route in ROUTES} <= set(ACCESS)
    assert len(ROUTES) == len({route.grpc_method for route in ROUTES})


@pytest.mark.parametrize("role", list(Role))
async def test_rest_routes_admit_exactly_the_roles_in_the_table(
    running: Running, credentials: dict[Role, str | None], role: Role
) -> None:
    credential = credentials[role]
    headers = {"authorization": credential} if credential else {}
    headers["anthropic-version"] = "2023-06-01"  # the Anthropic routes require it before judging the key
    for route in ROUTES:
        body: Any = None if route.http_method in ("GET", "DELETE") else BODIES.get(_path(route), {})
        reply = await running.http.request(route.http_method, _path(route), json=body, headers=headers)
        denied = reply.status_code in (401, 403) and _rest_reason(reply) in DENIED_REASONS
        allowed = role in ACCESS[route.grpc_method] or Role.PUBLIC in ACCESS[route.grpc_method]
        assert denied != allowed, (
            f"{role.value} on {route.http_method} {_path(route)}: {reply.status_code} {reply.text}"
        )


def _grpc_reason(error: grpc.aio.AioRpcError) -> str:
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            info = error_details_pb2.ErrorInfo()
            status_pb2.Status.FromString(value).details[0].Unpack(info)
            return str(info.reason)
    return ""


@pytest.mark.parametrize("role", list(Role))
async def test_grpc_methods_admit_exactly_the_roles_in_the_table(
    running: Running, credentials: dict[Role, str | None], role: Role
) -> None:
    credential = credentials[role]
    metadata = (("authorization", credential),) if credential else ()
    for route in ROUTES:
        if route.grpc_method.endswith("/DeleteSession"):
            continue  # covered over REST; here it would end the walk's session
        request = route.request_class()
        try:
            if route.server_streaming:
                call = running.channel.unary_stream(
                    route.grpc_method,
                    request_serializer=type(request).SerializeToString,
                    response_deserializer=route.response_class.FromString,
                )(request, metadata=metadata)
                async for _ in call:
                    pass
            else:
                await running.channel.unary_unary(
                    route.grpc_method,
                    request_serializer=type(request).SerializeToString,
                    response_deserializer=route.response_class.FromString,
                )(request, metadata=metadata)
            denied = False
        except grpc.aio.AioRpcError as exc:
            denied = (
                exc.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
                and _grpc_reason(exc) in DENIED_REASONS
            )
        allowed = role in ACCESS[route.grpc_method] or Role.PUBLIC in ACCESS[route.grpc_method]
        assert denied != allowed, f"{role.value} on {route.grpc_method}"


def test_the_table_keeps_each_kind_of_credential_in_its_lane() -> None:
    for method, roles in ACCESS.items():
        service = method.split("/")[1]
        if service == "tollgate.v1.RelayService":
            assert roles == {Role.API_TOKEN}, method
        elif method.endswith(("/GetSubscription", "/GetDashboardUsage")):
            assert roles == {Role.API_TOKEN}, method  # OpenAI's legacy billing shapes, read with a key
        elif service in ("tollgate.v1.TokenService", "tollgate.v1.BillingService"):
            assert Role.SESSION in roles and Role.API_TOKEN not in roles, method
            operator_too = ("/CreateToken", "/ListUsageLogs", "/GetUsageSummary", "/ListLedgerEntries")
            assert Role.OPERATOR not in roles or method.endswith(operator_too), method
        elif method.endswith(("/CreateSession",)):
            assert roles == {Role.PUBLIC}, method
        elif method.endswith("/DeleteSession"):
            assert roles == {Role.SESSION, Role.OPERATOR}, method
        elif method.endswith("/ChangePassword"):
            assert roles == {Role.SESSION}, method  # an account's own password; the operator's is its key
        elif service == "tollgate.v1.AccountService":
            assert roles == {Role.OPERATOR}, method
        else:
            assert roles == {Role.PUBLIC} and service.startswith("grpc."), method
