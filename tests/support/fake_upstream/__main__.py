"""`python -m tests.support.fake_upstream --port 0 --key KEY`: the fake upstream as its own process.

Prints `fake upstream listening on port N` once it accepts connections; stops on SIGTERM or SIGINT.
Nothing is recorded per request (only totals): read them at `GET /_fake/stats`, clear them with `POST /_fake/reset`.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from tests.support.fake_upstream.server import running_fake_upstream
from tests.support.fake_upstream.upstream import FakeConfig


def _parse(argv: list[str] | None) -> tuple[argparse.Namespace, FakeConfig]:
    parser = argparse.ArgumentParser(prog="python -m tests.support.fake_upstream", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed)")
    parser.add_argument("--key", default=FakeConfig.key, help="the API key every endpoint expects")
    parser.add_argument("--first-byte-ms", type=float, default=0.0)
    parser.add_argument("--chunks", type=int, default=FakeConfig.chunks)
    parser.add_argument("--chunk-interval-ms", type=float, default=0.0)
    parser.add_argument("--keepalive-ms", type=float, default=0.0)
    parser.add_argument("--record", action="store_true", help="keep every request in memory (not for long runs)")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    config = FakeConfig(
        key=args.key,
        chunks=args.chunks,
        first_byte_ms=args.first_byte_ms,
        chunk_interval_ms=args.chunk_interval_ms,
        keepalive_ms=args.keepalive_ms,
        record=args.record,
    )
    return args, config


async def _serve(args: argparse.Namespace, config: FakeConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with running_fake_upstream(config, host=args.host, port=args.port, log_level=args.log_level) as upstream:
        print(f"fake upstream listening on port {upstream.port}", flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    args, config = _parse(argv)
    asyncio.run(_serve(args, config))


if __name__ == "__main__":
    main()
