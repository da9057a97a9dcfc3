"""`GET /metrics`: the Prometheus exposition of the process serving this gateway.

Open to loopback clients (a sidecar or node agent), and to anyone else only with the metrics token
(`authorization: Bearer <metrics.token>`, compared in constant time). Without a token configured,
remote scrapes are refused: the numbers say how much each model sells.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response

from gateway.transcoder import status_response
from server.errors import PermissionDeniedError
from server.metrics import CONTENT_TYPE
from server.rpc_status import error_status


class MetricsEndpoint:
    """Renders the registry for callers allowed to read it."""

    def __init__(self, render: Callable[[], bytes], token: str) -> None:
        self._render = render
        self._token = token

    async def serve(self, request: Request) -> Response:
        if not (_loopback(request) or self._token_matches(request)):
            error = PermissionDeniedError("metrics are served to loopback or with the metrics token")
            return status_response(error_status(error, ""))
        return Response(self._render(), media_type=CONTENT_TYPE)

    def _token_matches(self, request: Request) -> bool:
        scheme, _, credential = request.headers.get("authorization", "").partition(" ")
        return bool(self._token) and scheme.lower() == "bearer" and hmac.compare_digest(credential, self._token)


def _loopback(request: Request) -> bool:
    if request.client is None:
        return False
    try:
        return ipaddress.ip_address(request.client.host).is_loopback
    except ValueError:
        return False
