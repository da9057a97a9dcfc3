"""The upstream HTTP/1.1 client: keep-alive connections per origin, responses parsed by llhttp (httptools).

An upstream call needs little of a general client: a POST with a JSON body, then a JSON answer or an event
stream, on keep-alive connections, with no cookies, redirects, proxies or compression. aiohttp did all of that
on every call, at about 0.2 ms of CPU each (bench/RESULTS.md); this client does only what upstream calls use.
Connections are made on demand (no pool limit: each channel's capacity bounds its calls) and kept idle for
`keepalive_seconds`, most recently used first.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import ssl
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import cast

import httptools

READ_AHEAD_BYTES = 256 * 1024
"""Unread body bytes past which a connection stops reading until its reader catches up (back-pressure)."""
DNS_TTL_SECONDS = 60.0
"""How long a host's looked-up addresses are used for new connections."""
_SMALL_BODY_BYTES = 64 * 1024
"""Bodies up to this size go out in one write with the head; larger ones are not copied."""


class HttpClientError(Exception):
    """An upstream call failed in transport: the HTTP client's own error tree, translated at its caller."""


class ConnectFailedError(HttpClientError):
    """No connection: the name did not resolve, nothing listened, or TLS failed."""


class ConnectTimeoutError(HttpClientError):
    """No connection within the connect timeout."""


class ReadTimeoutError(HttpClientError):
    """The server sent nothing within the read timeout."""


class DisconnectedError(HttpClientError):
    """The connection ended before the response did."""


class MalformedError(HttpClientError):
    """The request could not be written (a header with a line break) or the response is not HTTP/1.1."""


Origin = tuple[str, int, bool]
"""Host, port, TLS."""


class HttpClient:
    """Posts to upstreams; one per process, closed at shutdown."""

    def __init__(self, *, keepalive_seconds: float = 60.0, ssl_context: ssl.SSLContext | None = None) -> None:
        self._keepalive = keepalive_seconds
        self._ssl = ssl_context or ssl.create_default_context()
        self._idle: dict[Origin, collections.deque[_Connection]] = {}
        self._open: set[_Connection] = set()
        self._targets: dict[str, tuple[Origin, bytes]] = {}
        """Each URL's origin and request head, parsed once: the URLs are the channels' (configuration)."""
        self._resolved: dict[str, asyncio.Future[list[str]]] = {}
        self._resolved_until: dict[str, float] = {}

    async def post(
        self, url: str, headers: Mapping[str, str], body: bytes, *, connect_timeout: float, read_timeout: float
    ) -> HttpResponse:
        """Sends the request and returns once the response's head is in; `release()` the response when done."""
        origin, start = self._target(url)
        fields = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        if fields.count("\n") != len(headers) or fields.count("\r") != len(headers):
            raise MalformedError("a header holds a line break")
        try:
            head = b"%s%scontent-length: %d\r\n\r\n" % (start, fields.encode("latin-1"), len(body))
        except UnicodeEncodeError:
            raise MalformedError("a header holds a character outside Latin-1") from None
        connection = self._reuse(origin) or await self._connect(origin, connect_timeout)
        response = connection.send(head, body)
        try:
            await response.wait(lambda: response.status != 0, read_timeout)
        except BaseException:
            response.close()
            raise
        return response

    def _target(self, url: str) -> tuple[Origin, bytes]:
        known = self._targets.get(url)
        if known is None:
            try:
                parts = httptools.parse_url(url.encode())
            except httptools.HttpParserInvalidURLError:
                raise MalformedError("not a URL") from None
            if parts.schema not in (b"http", b"https") or not parts.host:
                raise MalformedError("not an http or https URL")
            tls = parts.schema == b"https"
            host = parts.host.decode()
            port = parts.port or (443 if tls else 80)
            path = (parts.path or b"/") + (b"?" + parts.query if parts.query else b"")
            name = f"[{host}]" if ":" in host else host.encode("idna").decode()
            authority = name if parts.port is None else f"{name}:{port}"
            # identity: this client decodes no compression, and without the header a server may compress
            start = b"POST %s HTTP/1.1\r\nhost: %s\r\naccept-encoding: identity\r\n" % (path, authority.encode())
            known = self._targets[url] = ((host, port, tls), start)
        return known

    def _reuse(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            if not connection.closed and now - connection.idle_since < self._keepalive:
                return connection
            connection.close()
        return None

    async def _connect(self, origin: Origin, timeout: float) -> _Connection:
        host, port, tls = origin
        loop = asyncio.get_running_loop()
        failure: OSError | None = None
        try:
            async with asyncio.timeout(timeout):
                for address in await self._addresses(host, port):
                    try:
                        _, connection = await loop.create_connection(
                            lambda: _Connection(origin, self._returned),
                            address,
                            port,
                            ssl=self._ssl if tls else None,
                            server_hostname=host if tls else None,
                        )
                        break
                    except OSError as exc:  # ssl.SSLError among them: the next address may serve
                        failure = exc
                else:
                    raise ConnectFailedError(str(failure)) from failure
        except TimeoutError:
            raise ConnectTimeoutError(f"no connection within {timeout:g} s") from None
        except OSError as exc:  # socket.gaierror: the name did not resolve
            raise ConnectFailedError(str(exc)) from exc
        self._open.add(connection)
        return connection

    async def _addresses(self, host: str, port: int) -> list[str]:
        """The host's addresses, looked up at most once per `DNS_TTL_SECONDS`: connections opened together wait
        for one lookup instead of queueing one each on the resolver's threads."""
        known = self._resolved.get(host)
        if known is None or (known.done() and time.monotonic() >= self._resolved_until.get(host, 0.0)):
            known = self._resolved[host] = asyncio.ensure_future(self._look_up(host, port))
        return await asyncio.shield(known)

    async def _look_up(self, host: str, port: int) -> list[str]:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        # Only an answer sets the time it holds until: after a failed lookup, the next connection asks again.
        self._resolved_until[host] = time.monotonic() + DNS_TTL_SECONDS
        return list(dict.fromkeys(str(info[4][0]) for info in infos))

    def _returned(self, connection: _Connection) -> None:
        """A connection whose last response ended: idle again if it may be reused, else forgotten."""
        if connection.closed:
            self._open.discard(connection)
            return
        now = connection.idle_since = time.monotonic()
        idle = self._idle.setdefault(connection.origin, collections.deque())
        while idle and (idle[0].closed or now - idle[0].idle_since >= self._keepalive):
            idle.popleft().close()  # the oldest first: dead or past their time, closed here, not kept
        idle.append(connection)

    async def close(self) -> None:
        for connection in list(self._open):
            connection.close()
        self._open.clear()
        self._idle.clear()
        await asyncio.sleep(0)  # the transports close on the loop's next turn


class _Connection(asyncio.Protocol):
    """One keep-alive connection; the parser's callbacks feed the response being read."""

    def __init__(self, origin: Origin, returned: Callable[[_Connection], None]) -> None:
        self.origin = origin
        self._returned = returned
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._response: HttpResponse | None = None
        self._paused = False
        self._interim = False
        self.closed = False
        self.idle_since = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's transports are not asyncio's classes

    def send(self, head: bytes, body: bytes) -> HttpResponse:
        if self.closed or self._transport is None:
            raise DisconnectedError("the upstream closed the connection before the request")
        self._response = response = HttpResponse(self)
        if len(body) <= _SMALL_BODY_BYTES:
            self._transport.write(head + body)
        else:
            self._transport.writelines((head, body))
        return response

    def data_received(self, data: bytes) -> None:
        if self._response is None:  # bytes nobody asked for: the connection cannot be trusted
            self.close()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if self._response is not None:
                self._response.fail(MalformedError(f"the upstream's response is not HTTP/1.1: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        response, self._response = self._response, None
        if response is not None:
            response.lost(clean=exc is None)
        self._returned(self)

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self._response is not None
        self._response.header(name.decode("latin-1").lower(), value.decode("latin-1"))

    def on_headers_complete(self) -> None:
        assert self._response is not None
        status = self._parser.get_status_code()
        if status < 200:  # 100 Continue, 103 Early Hints: the answer is still to come
            self._interim = True
            self._response.headers.clear()
            return
        self._response.head(status)

    def on_body(self, body: bytes) -> None:
        assert self._response is not None
        if self._response.body(body) > READ_AHEAD_BYTES and not self._paused and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        response, self._response = self._response, None
        assert response is not None
        if self._paused and self._transport is not None:  # no more of this answer to hold back: the next one reads
            self._paused = False
            self._transport.resume_reading()
        response.complete(self._parser.should_keep_alive())

    def taken(self, unread: int) -> None:
        if self._paused and unread <= READ_AHEAD_BYTES // 2 and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()

    def done(self, reusable: bool) -> None:
        """The response's reader is done with the connection."""
        if reusable and not self.closed:
            self._returned(self)
        else:
            self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self._transport is not None:
                self._transport.close()


class HttpResponse:
    """Status and headers once `post` returns; the body by `read()` or `chunks()`; then `release()`."""

    def __init__(self, connection: _Connection) -> None:
        self._connection = connection
        self.status = 0
        self.headers: dict[str, str] = {}
        """Lower-case names; a repeated header's values joined by ", "."""
        self._pieces: collections.deque[bytes] = collections.deque()
        self._unread = 0
        self._ended = False
        self._reusable = False
        self._until_close = False
        self._error: HttpClientError | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._released = False
        self._streaming = False
        self.deadline: float | None = None
        """The event loop's time by which `chunks()` must have its next piece, else ReadTimeoutError (None: never)."""

    # What the connection reports.
    def header(self, name: str, value: str) -> None:
        self.headers[name] = f"{self.headers[name]}, {value}" if name in self.headers else value

    def head(self, status: int) -> None:
        self.status = status
        framed = "content-length" in self.headers or "chunked" in self.headers.get("transfer-encoding", "")
        self._until_close = not framed and status not in (204, 304)
        self._wake()

    def body(self, piece: bytes) -> int:
        """Keeps a piece of the body; returns the bytes a streaming reader has yet to take (0 for `read()`)."""
        self._pieces.append(piece)
        self._unread += len(piece)
        self._wake()
        return self._unread if self._streaming else 0

    def complete(self, keep_alive: bool) -> None:
        self._ended, self._reusable = True, keep_alive
        self._wake()

    def lost(self, *, clean: bool) -> None:
        if self._until_close and self.status and not self._ended and clean:
            self._ended = True  # a body without a length ends where the connection does (closed, not reset)
        elif not self._ended:
            self._error = self._error or DisconnectedError("the upstream closed the connection mid-response")
        self._wake()

    def fail(self, error: HttpClientError) -> None:
        self._error = error
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # What the reader does.
    async def wait(
        self, ready: Callable[[], bool], timeout: float | None = None, *, deadline: float | None = None
    ) -> None:
        """Until `ready()` or the response ended; ReadTimeoutError after `timeout` seconds without news, or at the
        loop's time `deadline`. A timer is set only when there is something to wait for."""
        while not ready() and not self._ended:
            if self._error is not None:
                raise self._error
            loop = asyncio.get_running_loop()
            self._waiter = waiter = loop.create_future()
            at = deadline if timeout is None else loop.time() + timeout
            timer = None if at is None else loop.call_at(at, _time_out, waiter)
            try:
                await waiter
            finally:
                self._waiter = None
                if timer is not None:
                    timer.cancel()
        if self._error is not None and not ready():
            raise self._error

    async def read(self, timeout: float | None = None) -> bytes:
        """The whole body; `timeout` bounds each wait for more of it."""
        await self.wait(lambda: self._ended, timeout)
        body = b"".join(self._pieces)
        self._pieces.clear()
        self._unread = 0
        return body

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body's bytes as they arrive, each by `deadline` (which the reader may move between pieces)."""
        self._streaming = True
        while True:
            await self.wait(lambda: bool(self._pieces), deadline=self.deadline)
            if not self._pieces:
                return
            piece = self._pieces.popleft()
            self._unread -= len(piece)
            self._connection.taken(self._unread)
            yield piece

    def release(self) -> None:
        """Hands the connection back: kept for reuse when the body was read to its end, else closed."""
        if not self._released:
            self._released = True
            self._connection.done(self._ended and self._reusable and self._error is None)

    def close(self) -> None:
        self._released = True
        self._connection.close()


def _time_out(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(ReadTimeoutError("nothing from the upstream in time"))
