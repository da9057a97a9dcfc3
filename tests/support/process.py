"""`tollgate serve` as a real subprocess on free ports, for end-to-end tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

TOLLGATE = Path(sys.executable).parent / "tollgate"
_PORT_LINE = re.compile(rb"(gRPC|HTTP) listening on port (\d+)")


@dataclass
class TollgateProcess:
    """A running `tollgate serve` and what it printed so far."""

    process: asyncio.subprocess.Process
    grpc_port: int = 0
    http_port: int = 0
    output: list[str] = field(default_factory=list)
    _reader: asyncio.Task[None] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def text(self) -> str:
        return "".join(self.output)

    async def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM, then wait for the exit code (SIGKILL after `timeout`)."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
            raise
        if self._reader is not None:
            await self._reader
        return code


def tollgate_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """Environment for a throwaway instance: free ports, its own SQLite file, no config file."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("TOLLGATE_")}
    env.update(
        TOLLGATE_GRPC_LISTEN="127.0.0.1:0",
        TOLLGATE_HTTP_LISTEN="127.0.0.1:0",
        TOLLGATE_DATABASE_URL=f"sqlite:///{tmp_path}/tollgate.db",
    )
    env.update(overrides)
    return env


@contextlib.asynccontextmanager
async def running_tollgate(
    env: Mapping[str, str], *args: str, command: tuple[str, ...] = ("serve",), timeout: float = 20.0
) -> AsyncIterator[TollgateProcess]:
    """Starts `tollgate [args] serve` (or another command), waits until its ports are known, stops it afterwards."""
    process = await asyncio.create_subprocess_exec(
        str(TOLLGATE),
        *args,
        *command,
        env=dict(env),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    wants_grpc = command == ("serve",)
    tollgate = TollgateProcess(process)
    ready = asyncio.Event()

    async def read() -> None:
        assert process.stderr is not None
        async for line in process.stderr:
            tollgate.output.append(line.decode("utf-8", "replace"))
            found = _PORT_LINE.search(line)
            if found:
                port = int(found[2])
                if found[1] == b"gRPC":
                    tollgate.grpc_port = port
                else:
                    tollgate.http_port = port
                if tollgate.http_port and (tollgate.grpc_port or not wants_grpc):
                    ready.set()
        ready.set()

    tollgate._reader = asyncio.create_task(read())
    try:
        await asyncio.wait_for(ready.wait(), timeout)
        if not tollgate.http_port or (wants_grpc and not tollgate.grpc_port):
            raise RuntimeError(f"tollgate {' '.join(command)} did not start:\n" + tollgate.text())
        yield tollgate
    finally:
        if process.returncode is None:
            await tollgate.terminate()
