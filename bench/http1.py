"""A minimal HTTP/1.1 keep-alive client on an asyncio Protocol, cheap enough not to be the bottleneck."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

BodySink = Callable[[bytes], None]

# Chunked-decoding states kept in `_remaining` when no chunk data is pending.
_CHUNK_SIZE, _CHUNK_END, _LAST_LINE = -1, -2, -3


def post_request(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    """The raw bytes of a POST with a JSON body, sent as-is on every call (built once per scenario)."""
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Content-Type: application/json"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class HttpError(Exception):
    """The response was not 200, or the connection broke before the response ended."""


class HttpConnection(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time; bodies may be content-length or chunked."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._done: asyncio.Future[int] | None = None
        self._sink: BodySink | None = None
        self._status = 0
        self._in_head = True
        self._chunked = False
        self._remaining = 0  # body bytes left (content-length), of the current chunk, or a chunked state
        self.closed = False

    @classmethod
    async def open(cls, host: str, port: int) -> HttpConnection:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(cls, host, port)
        return protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._done is not None and not self._done.done():
            self._done.set_exception(HttpError(f"connection lost: {exc}"))

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    async def request(self, raw: bytes, sink: BodySink | None = None) -> int:
        """Sends `raw` and waits for the whole response; body pieces go to `sink`. Returns the status."""
        if self.closed or self._transport is None:
            raise HttpError("connection closed")
        self._done = asyncio.get_running_loop().create_future()
        self._sink = sink
        self._in_head = True
        self._transport.write(raw)
        return await self._done

    def data_received(self, data: bytes) -> None:
        self._buf += data
        try:
            while self._buf and self._done is not None and not self._done.done():
                if not (self._parse_head() if self._in_head else self._parse_body()):
                    break
        except (ValueError, IndexError) as exc:
            if self._done is not None and not self._done.done():
                self._done.set_exception(HttpError(f"bad response: {exc}"))
            self.close()

    def _parse_head(self) -> bool:
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            return False
        lines = bytes(self._buf[:end]).lower().split(b"\r\n")
        del self._buf[: end + 4]
        self._status = int(lines[0][9:12])
        self._chunked, self._remaining = False, 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name == b"content-length":
                self._remaining = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value:
                self._chunked, self._remaining = True, _CHUNK_SIZE
        self._in_head = False
        if not self._chunked and self._remaining == 0:
            self._finish()
        return True

    def _parse_body(self) -> bool:
        """Consumes what it can of the body; True when it should be called again at once."""
        if self._remaining > 0:
            piece = self._take(self._remaining)
            self._remaining -= len(piece)
            if self._remaining > 0:
                return False
            if not self._chunked:
                self._finish()
                return False
            self._remaining = _CHUNK_END
        line_end = self._buf.find(b"\r\n")
        if line_end < 0:
            return False
        line = bytes(self._buf[:line_end])
        del self._buf[: line_end + 2]
        if self._remaining == _CHUNK_END:
            self._remaining = _CHUNK_SIZE
        elif self._remaining == _LAST_LINE:
            self._finish()
        else:
            size = int(line.split(b";", 1)[0], 16)
            self._remaining = size if size else _LAST_LINE
        return True

    def _take(self, count: int) -> bytes:
        piece = bytes(self._buf[:count])
        del self._buf[:count]
        if self._sink is not None and piece:
            self._sink(piece)
        return piece

    def _finish(self) -> None:
        if self._done is not None and not self._done.done():
            self._done.set_result(self._status)
