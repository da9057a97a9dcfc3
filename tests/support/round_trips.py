"""A TCP proxy in front of PostgreSQL that counts round trips: the server ends each one with ReadyForQuery."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

_READY_FOR_QUERY = ord("Z")


class RoundTrips:
    """Relays every byte both ways and counts the server's ReadyForQuery messages (one per sync)."""

    def __init__(self) -> None:
        self.count = 0

    async def relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server_url: str) -> None:
        parts = urlsplit(server_url)
        upstream_reader, upstream_writer = await asyncio.open_connection(parts.hostname, parts.port or 5432)
        try:
            await asyncio.gather(self._copy(reader, upstream_writer), self._count_messages(upstream_reader, writer))
        finally:
            upstream_writer.close()
            writer.close()

    @staticmethod
    async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    async def _count_messages(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """The server's messages are framed as a type byte and a length that counts itself."""
        with contextlib.suppress(asyncio.IncompleteReadError):
            while True:
                header = await reader.readexactly(5)
                body = await reader.readexactly(struct.unpack("!I", header[1:])[0] - 4)
                if header[0] == _READY_FOR_QUERY:
                    self.count += 1
                writer.write(header + body)
                await writer.drain()
        writer.close()


@contextlib.asynccontextmanager
async def counting_round_trips(database_url: str) -> AsyncIterator[tuple[str, RoundTrips]]:
    """A URL of the same database through the proxy (no TLS or GSS negotiation, so every reply is framed)."""
    trips = RoundTrips()
    server = await asyncio.start_server(
        lambda reader, writer: trips.relay(reader, writer, database_url), "127.0.0.1", 0
    )
    port = server.sockets[0].getsockname()[1]
    parts = urlsplit(database_url)
    query = "&".join(filter(None, [parts.query, "sslmode=disable", "gssencmode=disable"]))
    netloc = f"{parts.username}@127.0.0.1:{port}" if parts.username else f"127.0.0.1:{port}"
    try:
        yield urlunsplit((parts.scheme, netloc, parts.path, query, "")), trips
    finally:
        server.close()
