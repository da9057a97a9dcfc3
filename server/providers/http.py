"""What every HTTP provider shares: one client per process, and transport errors as domain errors."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Mapping
from typing import Any

from server import wire_json
from server.errors import TollgateError, UpstreamError, UpstreamTimeoutError
from server.providers.base import Deadlines
from server.providers.http_client import (
    ConnectFailedError,
    ConnectTimeoutError,
    DisconnectedError,
    HttpClient,
    HttpClientError,
    HttpResponse,
    ReadTimeoutError,
)


@contextlib.contextmanager
def transport_errors(channel: str) -> Iterator[None]:
    """Translates the client's errors into domain errors; the message names the channel, never its host or key."""
    try:
        yield
    except ConnectTimeoutError as exc:
        raise UpstreamError(f"channel {channel} did not accept a connection in time", retryable=True) from exc
    except ReadTimeoutError as exc:
        raise UpstreamTimeoutError(f"channel {channel} did not answer in time") from exc
    except ConnectFailedError as exc:
        raise UpstreamError(f"channel {channel} is unreachable", retryable=True) from exc
    except DisconnectedError as exc:
        raise UpstreamError(f"channel {channel} broke the connection", retryable=True) from exc
    except HttpClientError as exc:
        raise UpstreamError(f"channel {channel} failed", retryable=True) from exc
    except TimeoutError as exc:  # our own deadline around the whole call
        raise UpstreamTimeoutError(f"channel {channel} did not answer in time") from exc


def retry_after(response: HttpResponse) -> float | None:
    """Seconds from `retry-after-ms` or `retry-after` (seconds form only); None when absent or odd."""
    for header, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = response.headers.get(header)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            continue
        if seconds >= 0:
            return seconds
    return None


def json_body(body: bytes) -> Any:
    """The parsed body of an upstream error or answer; None when it is not JSON."""
    try:
        return wire_json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


async def body_lines(response: HttpResponse) -> AsyncIterator[str]:
    """The body's lines without their endings (LF, CRLF or CR), however long, as they arrive."""
    pending = b""
    async for chunk in response.chunks():
        pending += chunk
        held = b"\r" if pending.endswith(b"\r") else b""  # the CR may be the first half of a CRLF
        *lines, rest = pending[: len(pending) - len(held)].replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        pending = rest + held
        for line in lines:
            yield line.decode("utf-8", "replace")
    if pending.rstrip(b"\r"):
        yield pending.rstrip(b"\r").decode("utf-8", "replace")


async def sse_events(response: HttpResponse) -> AsyncIterator[tuple[str, str]]:
    """(event name, data) pairs of a server-sent-events body; comments (keep-alives) are skipped."""
    event = ""
    data: list[str] = []
    async for line in body_lines(response):
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "", []
        elif line.startswith("data:"):
            data.append(line[5:].lstrip(" "))
        elif line.startswith("event:"):
            event = line[6:].strip()
    if data:
        yield event, "\n".join(data)


class StreamPacer:
    """The wait allowed for a stream's next event: first byte, then idle gaps, within the absolute cap.

    Waits are computed per read instead of wrapping the whole stream in a timeout: a timeout around
    `yield` would fire in whatever the consumer is doing.
    """

    def __init__(self, deadlines: Deadlines) -> None:
        self._deadlines = deadlines
        self._end = time.monotonic() + deadlines.stream_total
        self._started = False

    def next_wait(self) -> float:
        gap = self._deadlines.idle if self._started else self._deadlines.first_byte
        return max(0.0, min(gap, self._end - time.monotonic()))

    def received(self) -> None:
        self._started = True

    def timeout_error(self, channel: str) -> TollgateError:
        if time.monotonic() >= self._end:
            return UpstreamTimeoutError(f"the answer from channel {channel} exceeded the stream time limit")
        if not self._started:
            return UpstreamTimeoutError(f"channel {channel} sent no first token in time")
        return UpstreamError(f"channel {channel} stalled mid-stream", retryable=False)


ErrorMapper = Callable[[int, Any, "float | None"], TollgateError]
"""(HTTP status, parsed body, Retry-After seconds) → the domain error of an upstream's refusal."""


async def _drain(events: AsyncIterator[tuple[str, str]], seconds: float = 1.0) -> None:
    """Reads what follows the last event, so the pool keeps the connection; gives up quietly."""
    with contextlib.suppress(TimeoutError, HttpClientError):
        async with asyncio.timeout(seconds):
            async for _ in events:
                pass


class HttpUpstream:
    """One channel's HTTP calls: JSON answers and event streams, with its headers, timeouts and errors."""

    def __init__(self, name: str, client: HttpClient, headers: dict[str, str], error_from: ErrorMapper) -> None:
        self.name = name
        self._client = client
        self._headers = headers
        self._error_from = error_from

    async def post_json(
        self,
        url: str,
        body: dict[str, Any],
        deadlines: Deadlines,
        request_id: str,
        extra_headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """The JSON object an upstream answers, within the unary deadline."""
        with transport_errors(self.name):
            async with asyncio.timeout(deadlines.total):
                response = await self._client.post(
                    url,
                    self._headers_for(request_id, extra_headers),
                    wire_json.dumps(body),
                    connect_timeout=deadlines.connect,
                    read_timeout=deadlines.first_byte,
                )
                try:
                    content = await response.read(deadlines.first_byte)
                finally:
                    response.release()
        self._raise_for_status(response, content)
        answer = json_body(content)
        if not isinstance(answer, dict):
            raise UpstreamError(f"channel {self.name} sent a malformed answer", retryable=True)
        return answer

    async def stream_events(
        self,
        url: str,
        body: dict[str, Any],
        deadlines: Deadlines,
        request_id: str,
        is_last: Callable[[str, str], bool],
        extra_headers: Mapping[str, str] | None = None,
    ) -> AsyncGenerator[tuple[str, str], None]:
        """The (event, data) pairs of a streamed answer, each within its first-byte or idle deadline.

        After the event `is_last` recognises, the rest of the body is read (briefly) so the connection
        can be reused. Raises UpstreamError when the upstream closes the stream before that event.
        """
        with transport_errors(self.name):
            async with asyncio.timeout(deadlines.first_byte + deadlines.connect):
                response = await self._client.post(
                    url,
                    self._headers_for(request_id, extra_headers),
                    wire_json.dumps(body),
                    connect_timeout=deadlines.connect,
                    read_timeout=deadlines.first_byte,
                )
            try:
                if response.status >= 400:
                    async with asyncio.timeout(deadlines.first_byte):  # the whole error body, not each read
                        self._raise_for_status(response, await response.read())
                events = sse_events(response)
                pacer = StreamPacer(deadlines)
                clock = asyncio.get_running_loop().time
                while True:
                    response.deadline = clock() + pacer.next_wait()  # for the next event, however many reads it takes
                    try:
                        event = await anext(events)
                    except StopAsyncIteration:
                        raise UpstreamError(f"channel {self.name} cut the stream", retryable=False) from None
                    except ReadTimeoutError:
                        raise pacer.timeout_error(self.name) from None
                    pacer.received()
                    yield event
                    if is_last(*event):
                        await _drain(events)
                        return
            finally:
                response.release()  # back to the pool when read to the end, else closed

    def _headers_for(self, request_id: str, extra: Mapping[str, str] | None) -> dict[str, str]:
        """The channel's auth headers, JSON, and Tollgate's request id so both sides can find one call."""
        headers = {**(extra or {}), **self._headers, "content-type": "application/json"}
        if request_id:
            headers["x-request-id"] = request_id
        return headers

    def _raise_for_status(self, response: HttpResponse, content: bytes) -> None:
        if response.status < 400:
            return
        raise self._error_from(response.status, json_body(content), retry_after(response))
