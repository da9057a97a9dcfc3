"""`python -m bench [--quick]`: Tollgate against a direct call to the fake upstream, side by side in one run."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import capacity, report, scenarios
from bench.load import closed_loop
from bench.procs import CpuClock, Pinning
from bench.settings import Settings
from bench.stack import running_floor, running_stack
from bench.targets import Targets, server_of

RESULTS = Path(__file__).resolve().parent / "results"
GENERATOR_CHECK_CONCURRENCY = 50
"""Workers of the generator self-check: the host's speed, the fake upstream alone against the generator."""


def _parse(argv: list[str] | None) -> tuple[Settings, Path, str]:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="about 2 minutes: 2 rounds, 1,000 streams held 10 s")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--seconds", type=float, help="length of one measured unary run")
    parser.add_argument("--hold", type=float, help="seconds to hold the open streams")
    parser.add_argument("--capacity", help="comma-separated numbers of open streams, e.g. 1000,5000 (empty: skip)")
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.json")
    parser.add_argument(
        "--backend", choices=("sqlite", "postgres"), default="sqlite", help="postgres: PostgreSQL and Redis"
    )
    args = parser.parse_args(argv)
    settings = dataclasses.replace(Settings.quick() if args.quick else Settings(), backend=args.backend)
    if args.rounds:
        settings = dataclasses.replace(settings, rounds=args.rounds)
    if args.seconds:
        settings = dataclasses.replace(settings, seconds=args.seconds)
    if args.hold:
        settings = dataclasses.replace(settings, hold_seconds=args.hold)
    if args.capacity is not None:
        sizes = tuple(int(n) for n in args.capacity.split(",") if n.strip())
        settings = dataclasses.replace(settings, capacity=sizes)
    tuned = any(v is not None for v in (args.rounds, args.seconds, args.hold, args.capacity))
    return settings, args.output, "custom" if tuned else "quick" if args.quick else "full"


async def _generator_check(targets: Targets, settings: Settings, clock: CpuClock, pinning: Pinning) -> dict[str, float]:
    """The load generator alone against the fake upstream, each on its own core (Tollgate idle meanwhile)."""
    if pinning.tollgate_core is not None:
        os.sched_setaffinity(0, {pinning.tollgate_core})
    try:
        calls = targets.unary_calls("direct", GENERATOR_CHECK_CONCURRENCY)
        await closed_loop(calls, duration=settings.warmup_seconds, max_requests=settings.max_requests, clock=clock)
        sample = await closed_loop(calls, duration=settings.seconds, max_requests=settings.max_requests, clock=clock)
        for call in calls:
            call.close()
    finally:
        pinning.pin_self()
    per_request = sample.cpu_per_request("generator")
    result = {
        "rps": sample.rps,
        "generator_cpu_ms_per_req": per_request,
        "generator_capacity_rps": 1000 / per_request if per_request else 0.0,
        "upstream_cpu_ms_per_req": sample.cpu_per_request("upstream"),
        "errors": sample.errors,
    }
    print(
        f"  generator alone: {sample.rps:.0f} req/s against the fake upstream; generator {per_request:.3f} ms CPU/req "
        f"(~{result['generator_capacity_rps']:.0f} req/s per core), fake upstream "
        f"{result['upstream_cpu_ms_per_req']:.3f} ms CPU/req",
        file=sys.stderr,
    )
    return result


async def _run(settings: Settings, pinning: Pinning) -> dict[str, Any]:
    RESULTS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tollgate-bench-") as workdir:
        async with (
            running_stack(Path(workdir), pinning, log_dir=RESULTS, backend=settings.backend) as stack,
            running_floor(stack, pinning, log_dir=RESULTS) as floor,
        ):
            pids = {"tollgate": stack.tollgate_pid, "floor": floor.pid, "upstream": stack.upstream_pid, "generator": 0}
            clock = CpuClock(pids)
            targets = Targets.of(stack, floor)
            try:
                print("generator self-check", file=sys.stderr)
                generator = await _generator_check(targets, settings, clock, pinning)
                print("non-streaming chat", file=sys.stderr)
                unary = await scenarios.unary(targets, settings, clock)
                print("streaming chat: time to first token", file=sys.stderr)
                streams = await scenarios.streaming(targets, settings, clock)
                print("streaming chat: CPU per 16-chunk stream", file=sys.stderr)
                stream_cpu = await scenarios.stream_cpu(targets, settings, clock)
                print("stream capacity", file=sys.stderr)
                held = [await capacity.hold(stack, settings, count) for count in settings.capacity]
            finally:
                await targets.close()
    return {
        "generator": generator,
        "unary": {t: {c: scenarios.medians(s, server_of(t)) for c, s in per_c.items()} for t, per_c in unary.items()},
        "streaming": {t: report.stream_medians(rounds) for t, rounds in streams.items()},
        "stream_cpu": {t: scenarios.medians(s) for t, s in stream_cpu.items()},
        "capacity": held,
    }


def main(argv: list[str] | None = None) -> None:
    settings, output, mode = _parse(argv)
    pinning = Pinning.for_machine()
    pinning.pin_self()  # before any thread starts, so the gRPC client's threads inherit the core
    print(f"pinning: {pinning.describe()}", file=sys.stderr)
    started = time.monotonic()
    results = asyncio.run(_run(settings, pinning))
    checks = report.checks(results["unary"], results["streaming"], results["stream_cpu"], results["capacity"])
    machine = report.machine()
    lines = [
        f"Tollgate benchmark ({mode}, {settings.backend}), {settings.rounds} rounds, medians; "
        f"{time.monotonic() - started:.0f} s",
        f"machine: {machine['nproc']} CPUs ({machine['cpu']}), Python {machine['python']}; host speed, which moves "
        f"every figure: the fake upstream alone answers the generator {results['generator']['rps']:,.0f} req/s "
        f"(c={GENERATOR_CHECK_CONCURRENCY})",
        f"pinning: {pinning.describe()}",
        "",
        *report.target_table(checks),
        "",
        "Non-streaming chat (core busy % = CPU time / wall time of the run; floor-rest and floor-grpc: "
        "`python -m bench.floor`, Tollgate's stack relaying with none of its work, on Tollgate's core)",
        *report.unary_table(results["unary"]),
        "",
        f"Streaming chat, concurrency 1, upstream `{settings.stream_scenario}` (floor-rest passes the events through "
        "as bytes; floor-grpc makes each a message, as a gRPC relay must)",
        *report.stream_table(results["streaming"]),
        "",
        f"Stream capacity via REST, upstream chunk every {settings.capacity_chunk_interval_ms / 1000:.0f} s",
        *report.capacity_table(results["capacity"]),
    ]
    print("\n".join(lines))
    document = {
        "machine": machine,
        "pinning": pinning.describe(),
        "settings": dataclasses.asdict(settings),
        "targets": [{**dataclasses.asdict(c), "passed": c.passed} for c in checks],
        **results,
        "capacity": [
            {**dataclasses.asdict(c), "rss_per_stream_kib": c.rss_per_stream_kib} for c in results["capacity"]
        ],
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nwrote {output}")


if __name__ == "__main__":
    main()
