"""The processes under test: starting them pinned to cores, and reading their CPU time and RSS from /proc."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of the process, in seconds (clock-tick resolution)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def rss_kib(pid: int) -> int:
    """VmRSS of the process in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class CpuClock:
    """CPU time of named processes (0 = this process, the load generator)."""

    def __init__(self, pids: Mapping[str, int]) -> None:
        self.pids = dict(pids)

    def read(self) -> dict[str, float]:
        return {name: cpu_seconds(pid or os.getpid()) for name, pid in self.pids.items()}

    def since(self, before: Mapping[str, float]) -> dict[str, float]:
        """CPU milliseconds per process since `before` (a `read()`)."""
        now = self.read()
        return {name: (now[name] - before[name]) * 1000 for name in now}


class Pinning:
    """Which cores each side gets: Tollgate alone on one core, the upstream and the generator on another."""

    def __init__(self, tollgate_core: int | None, client_core: int | None) -> None:
        self.tollgate_core = tollgate_core
        self.client_core = client_core
        self.taskset = shutil.which("taskset")

    @classmethod
    def for_machine(cls) -> Pinning:
        cores = sorted(os.sched_getaffinity(0))
        return cls(cores[0], cores[1]) if len(cores) >= 2 else cls(None, None)

    def command(self, core: int | None, argv: Sequence[str]) -> list[str]:
        if core is None or self.taskset is None:
            return list(argv)
        return [self.taskset, "-c", str(core), *argv]

    def pin_self(self) -> None:
        if self.client_core is not None:
            os.sched_setaffinity(0, {self.client_core})

    def describe(self) -> str:
        if self.tollgate_core is None:
            return "no pinning (fewer than 2 cores available)"
        tool = "taskset -c" if self.taskset else "sched_setaffinity (taskset missing)"
        return (
            f"Tollgate on core {self.tollgate_core} ({tool} {self.tollgate_core}); fake upstream on core "
            f"{self.client_core} ({tool} {self.client_core}); load generator on core {self.client_core} "
            f"(os.sched_setaffinity, its gRPC threads inherit it)"
        )

    def preexec(self, core: int | None) -> None:
        """Pins a child when taskset is missing (runs in the child before exec)."""
        if core is not None and self.taskset is None:
            os.sched_setaffinity(0, {core})


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_for_port(port: int, proc: asyncio.subprocess.Process, timeout: float = 30.0) -> None:
    """Returns once 127.0.0.1:port accepts a connection; raises if the process dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.returncode is not None:
            raise RuntimeError(f"process {proc.pid} exited with {proc.returncode} during start-up")
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


@contextlib.asynccontextmanager
async def child(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    log: Path,
    pinning: Pinning,
    core: int | None,
    capture_stdout: bool = False,
) -> AsyncIterator[asyncio.subprocess.Process]:
    """A child process pinned to `core`, its output in `log`; SIGTERM (then SIGKILL after 15 s) on exit."""
    with log.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            *pinning.command(core, argv),
            env=dict(env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE if capture_stdout else err,
            stderr=err,
            preexec_fn=lambda: pinning.preexec(core),
        )
        try:
            yield proc
        finally:
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 15)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
