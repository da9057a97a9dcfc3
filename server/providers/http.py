"""What every HTTP provider shares: one client per process, and transport errors as domain errors."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx

from server.errors import TollgateError, UpstreamError, UpstreamTimeoutError
from server.providers.base import Deadlines


def create_http_client(connect_timeout: float) -> httpx.AsyncClient:
    """The process's one upstream client: pooled keep-alive connections, explicit timeouts."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(connect_timeout, connect=connect_timeout),
        limits=httpx.Limits(max_connections=2000, max_keepalive_connections=500, keepalive_expiry=60),
        follow_redirects=False,  # an upstream that redirects must not take the key elsewhere
    )


def request_timeout(connect: float, first_byte: float) -> httpx.Timeout:
    """httpx timeouts of one upstream request: reads wait at most the first-byte time."""
    return httpx.Timeout(first_byte, connect=connect, write=connect, pool=connect)


@contextlib.contextmanager
def transport_errors(channel: str) -> Iterator[None]:
    """Translates httpx's errors into domain errors; the message names the channel, never its host or key."""
    try:
        yield
    except httpx.ConnectTimeout as exc:
        raise UpstreamError(f"channel {channel} did not accept a connection in time", retryable=True) from exc
    except httpx.TimeoutException as exc:
        raise UpstreamTimeoutError(f"channel {channel} did not answer in time") from exc
    except httpx.ConnectError as exc:
        raise UpstreamError(f"channel {channel} is unreachable", retryable=True) from exc
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
        raise UpstreamError(f"channel {channel} broke the connection", retryable=True) from exc
    except httpx.HTTPError as exc:
        raise UpstreamError(f"channel {channel} failed", retryable=True) from exc


def retry_after(response: httpx.Response) -> float | None:
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


def json_body(response: httpx.Response) -> Any:
    """The parsed body of an upstream error or answer; None when it is not JSON."""
    try:
        return json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return None


async def sse_events(response: httpx.Response) -> AsyncIterator[tuple[str, str]]:
    """(event name, data) pairs of a server-sent-events body; comments (keep-alives) are skipped."""
    event = ""
    data: list[str] = []
    async for line in response.aiter_lines():
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
