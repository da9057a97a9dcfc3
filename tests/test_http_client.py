"""The upstream HTTP/1.1 client against scripted servers on real sockets: framing, keep-alive, failures, TLS."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import uvloop

from server.providers.http_client import (
    READ_AHEAD_BYTES,
    ConnectFailedError,
    DisconnectedError,
    HttpClient,
    MalformedError,
    ReadTimeoutError,
)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
HEADERS = {"authorization": "Bearer sk-test", "content-type": "application/json"}


class Scripted:
    """A server that answers each request with the next of `answers` (bytes, or a handler of its own)."""

    def __init__(self, answers: list[bytes | Handler]) -> None:
        self.answers = answers
        self.connections = 0
        self.requests: list[bytes] = []
        self.handlers: set[asyncio.Task[None]] = set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.handlers.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            while self.answers:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                self.requests.append(head + await reader.readexactly(length))
                answer = self.answers.pop(0)
                if isinstance(answer, bytes):
                    writer.write(answer)
                    await writer.drain()
                else:
                    await answer(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def serving(scripted: Scripted, tls: ssl.SSLContext | None = None) -> AsyncIterator[str]:
    server = await asyncio.start_server(scripted.handle, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"{'https' if tls else 'http'}://localhost:{port}/v1/chat/completions"
    finally:
        server.close()
        for handler in scripted.handlers:
            handler.cancel()
        await asyncio.gather(*scripted.handlers, return_exceptions=True)


def answer(body: bytes, *headers: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\n%scontent-length: %d\r\n\r\n%s" % (
        b"".join(h + b"\r\n" for h in headers),
        len(body),
        body,
    )


def chunked(*pieces: bytes) -> bytes:
    body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces)
    return b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + body + b"0\r\n\r\n"


async def post(client: HttpClient, url: str, body: bytes = b'{"q": 1}', read_timeout: float = 5.0) -> tuple[int, bytes]:
    response = await client.post(url, HEADERS, body, connect_timeout=5, read_timeout=read_timeout)
    try:
        return response.status, await response.read(read_timeout)
    finally:
        response.release()


async def test_answers_of_either_framing_come_whole_over_one_kept_alive_connection() -> None:
    scripted = Scripted([answer(b'{"a": 1}', b"retry-after: 3"), chunked(b'{"b"', b": 2}"), answer(b"{}")])
    client = HttpClient()
    async with serving(scripted) as url:
        assert await post(client, url) == (200, b'{"a": 1}')
        assert await post(client, url) == (200, b'{"b": 2}')
        response = await client.post(url, HEADERS, b"{}", connect_timeout=5, read_timeout=5)
        assert response.headers["content-length"] == "2"
        assert await response.read() == b"{}"
        response.release()
    await client.close()
    assert scripted.connections == 1
    first = scripted.requests[0]
    assert first.startswith(b"POST /v1/chat/completions HTTP/1.1\r\nhost: localhost:")
    assert b"authorization: Bearer sk-test\r\n" in first and b"accept-encoding: identity\r\n" in first
    assert first.endswith(b'content-length: 8\r\n\r\n{"q": 1}')


async def _unframed(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b'HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n{"whole": ')
    await writer.drain()
    await asyncio.sleep(0.01)
    writer.write(b"true}")
    writer.close()


async def test_a_body_without_a_length_ends_with_its_connection_which_is_not_reused() -> None:
    scripted = Scripted([_unframed, answer(b"{}")])
    client = HttpClient()
    async with serving(scripted) as url:
        assert await post(client, url) == (200, b'{"whole": true}')
        assert await post(client, url) == (200, b"{}")
    await client.close()
    assert scripted.connections == 2


async def test_a_connection_the_server_closed_while_idle_is_not_used_again() -> None:
    async def answer_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(answer(b"{}"))
        await writer.drain()
        writer.close()

    scripted = Scripted([answer_then_close, answer(b'{"again": 1}')])
    client = HttpClient()
    async with serving(scripted) as url:
        assert await post(client, url) == (200, b"{}")
        await asyncio.sleep(0.05)  # the close reaches the client while the connection is idle
        assert await post(client, url) == (200, b'{"again": 1}')
    await client.close()
    assert scripted.connections == 2


async def test_interim_responses_are_skipped() -> None:
    scripted = Scripted([b"HTTP/1.1 103 Early Hints\r\nlink: </x>\r\n\r\n" + answer(b"{}")])
    client = HttpClient()
    async with serving(scripted) as url:
        response = await client.post(url, HEADERS, b"{}", connect_timeout=5, read_timeout=5)
        assert (response.status, "link" in response.headers, await response.read()) == (200, False, b"{}")
        response.release()
    await client.close()


def _reply_and_close(reply: bytes) -> Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(reply)
        await writer.drain()
        writer.close()

    return handle


async def _unframed_then_reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b'HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n{"cut": ')
    await writer.drain()
    await asyncio.sleep(0.05)
    writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()  # RST, not FIN: a body without a length is cut, not ended


@pytest.mark.parametrize(
    ("broken", "error"),
    [
        (_reply_and_close(b'HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{"cut'), DisconnectedError),
        (_reply_and_close(b""), DisconnectedError),
        (_reply_and_close(b"SMTP ready\r\n\r\n"), MalformedError),
        (_unframed_then_reset, DisconnectedError),
    ],
)
async def test_a_broken_answer_is_an_error_of_its_kind(broken: Handler, error: type[Exception]) -> None:
    client = HttpClient()
    async with serving(Scripted([broken])) as url:
        with pytest.raises(error):
            await post(client, url)
    await client.close()


async def test_silence_is_a_read_timeout_and_the_connection_is_dropped() -> None:
    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up and closes

    scripted = Scripted([hang, answer(b"{}")])
    client = HttpClient()
    async with serving(scripted) as url:
        started = time.monotonic()
        with pytest.raises(ReadTimeoutError):
            await post(client, url, read_timeout=0.2)
        assert time.monotonic() - started < 2
        assert scripted.answers  # the hung connection was not used again; a new one will be


async def test_nothing_listening_and_header_injection_fail_before_anything_is_sent() -> None:
    client = HttpClient()
    async with serving(Scripted([])) as url:
        pass  # closed: nothing listens on its port any more
    with pytest.raises(ConnectFailedError):
        await post(client, url)
    scripted = Scripted([answer(b"{}")])
    async with serving(scripted) as url:
        for bad in ({"x-request-id": "a\r\nx-evil: 1"}, {"x-request-id": "\u20ac"}):
            with pytest.raises(MalformedError):
                await client.post(url, bad, b"{}", connect_timeout=5, read_timeout=5)
        assert scripted.connections == 0
    await client.close()


async def test_connections_opened_together_share_one_lookup_and_a_failed_lookup_is_not_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = asyncio.get_running_loop()
    real = loop.getaddrinfo
    lookups: list[str] = []

    async def counted(host: str, *args: object, **kwargs: object) -> object:
        lookups.append(host)
        if len(lookups) == 1:
            raise socket.gaierror(socket.EAI_AGAIN, "temporary failure in name resolution")
        await asyncio.sleep(0.01)  # a resolver that takes its time, while the others wait for its answer
        return await real(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(loop, "getaddrinfo", counted)
    client = HttpClient()
    async with serving(Scripted([answer(b"{}")] * 10)) as url:
        with pytest.raises(ConnectFailedError):
            await post(client, url)
        assert await asyncio.gather(*(post(client, url) for _ in range(9))) == [(200, b"{}")] * 9
    await client.close()
    assert lookups == ["localhost", "localhost"]


async def test_a_large_body_streams_through_with_back_pressure_and_reads_whole() -> None:
    payload = bytes(range(256)) * (4 * READ_AHEAD_BYTES // 256)
    scripted = Scripted([answer(payload), answer(payload)])
    client = HttpClient()
    async with serving(scripted) as url:
        response = await client.post(url, HEADERS, b"{}", connect_timeout=5, read_timeout=5)
        received = bytearray()
        async for piece in response.chunks():
            received += piece
            await asyncio.sleep(0.001)  # a slow reader: the connection pauses rather than buffering everything
        response.release()
        assert bytes(received) == payload
        assert await post(client, url) == (200, payload)
    await client.close()
    assert scripted.connections == 1


def test_the_client_runs_on_uvloop_as_tollgate_serve_does() -> None:
    async def scenario() -> int:
        scripted = Scripted([answer(b"{}"), chunked(b"{", b"}")])
        client = HttpClient()
        async with serving(scripted) as url:
            assert await post(client, url) == (200, b"{}")
            assert await post(client, url) == (200, b"{}")
        await client.close()
        return scripted.connections

    assert uvloop.run(scenario()) == 1


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_tls_verifies_the_upstream_certificate(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(cert, key)
    scripted = Scripted([answer(b'{"tls": 1}'), answer(b"{}")])
    async with serving(scripted, server_side) as url:
        untrusting = HttpClient()
        with pytest.raises(ConnectFailedError):
            await post(untrusting, url)
        await untrusting.close()
        trusting = HttpClient(ssl_context=ssl.create_default_context(cafile=str(cert)))
        assert await post(trusting, url) == (200, b'{"tls": 1}')
        await trusting.close()


async def test_a_connection_paused_as_its_answer_completed_reads_again_when_reused() -> None:
    # After the first byte, just under the read-ahead; then a small last piece that crosses it and ends the answer.
    parts = [b"{", b"x" * (READ_AHEAD_BYTES - 100), b"x" * 200]

    async def in_three_reads(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % sum(map(len, parts)))
        for part in parts:
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(0.05)

    scripted = Scripted([in_three_reads, answer(b'{"next": 1}')])
    client = HttpClient()
    async with serving(scripted) as url:
        response = await client.post(url, HEADERS, b"{}", connect_timeout=5, read_timeout=5)
        pieces = response.chunks()
        assert await anext(pieces) == b"{"
        await asyncio.sleep(0.3)  # the rest arrives while nobody reads: reading pauses in the turn the answer ends
        response.release()
        assert await post(client, url, read_timeout=2) == (200, b'{"next": 1}')
    await client.close()
    assert scripted.connections == 1
