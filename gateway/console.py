"""The web console: static HTML, CSS and ES modules from `gateway/console/`, served at `/` under a strict CSP.

`gateway/console/vendor/` holds libraries copied from npm by `scripts/vendor-console`, served under
`/console/vendor/`.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

ASSETS = Path(__file__).with_name("console")
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# Scripts and styles only from this origin, no inline code, fetch only to this origin, no framing.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cache-control": "no-cache",
}


class Console:
    """Serves the console's files, read once at start-up; any other name under /console/ is 404."""

    def __init__(self, directory: Path = ASSETS) -> None:
        paths = [*directory.iterdir(), *(directory / "vendor").glob("*")]
        self._files = {
            path.relative_to(directory).as_posix(): (path.read_bytes(), CONTENT_TYPES[path.suffix])
            for path in sorted(paths)
            if path.is_file() and path.suffix in CONTENT_TYPES
        }

    @property
    def names(self) -> tuple[str, ...]:
        """The served file names, relative to the console directory (`app.js`, `vendor/uPlot.esm.js`)."""
        return tuple(self._files)

    def routes(self) -> list[Route]:
        return [
            Route("/", self.index, methods=["GET", "HEAD"]),
            Route("/console/{name:path}", self.asset, methods=["GET", "HEAD"]),
        ]

    async def index(self, _: Request) -> Response:
        return self._response("index.html")

    async def asset(self, request: Request) -> Response:
        return self._response(request.path_params["name"])

    def _response(self, name: str) -> Response:
        found = self._files.get(name)
        if found is None:
            return Response("Not Found", status_code=404, media_type="text/plain", headers=SECURITY_HEADERS)
        body, content_type = found
        return Response(body, headers=SECURITY_HEADERS | {"content-type": content_type})
