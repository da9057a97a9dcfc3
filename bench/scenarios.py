"""Unary and streaming scenarios, interleaved direct -> REST -> gRPC at every point, several rounds."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence

from bench.load import Call, Sample, closed_loop, median, percentile
from bench.procs import CpuClock
from bench.settings import Settings
from bench.targets import FLOOR_TARGETS, TARGETS, StreamCall, Targets, server_of


def _close(calls: Sequence[Call]) -> None:
    for call in calls:
        call.close()


async def _measure(calls: Sequence[Call], settings: Settings, clock: CpuClock, seconds: float) -> Sample:
    await closed_loop(calls, duration=settings.warmup_seconds, max_requests=settings.max_requests, clock=clock)
    return await closed_loop(calls, duration=seconds, max_requests=settings.max_requests, clock=clock)


async def unary(targets: Targets, settings: Settings, clock: CpuClock) -> dict[str, dict[int, list[Sample]]]:
    """Non-streaming chat: samples[target][concurrency], one per round; the floor at its concurrencies only."""
    samples: dict[str, dict[int, list[Sample]]] = {}
    for round_no in range(settings.rounds):
        for concurrency in settings.concurrencies:
            floor = FLOOR_TARGETS if concurrency in settings.floor_concurrencies else ()
            for target in (*TARGETS, *floor):
                calls = targets.unary_calls(target, concurrency)
                try:
                    sample = await _measure(calls, settings, clock, settings.seconds)
                finally:
                    _close(calls)
                samples.setdefault(target, {}).setdefault(concurrency, []).append(sample)
                server = server_of(target)
                print(
                    f"  round {round_no + 1} unary c={concurrency:<3} {target:<10} {sample.rps:7.0f} req/s  "
                    f"p50 {sample.percentile(50):6.2f} ms  p99 {sample.percentile(99):6.2f} ms  "
                    f"errors {sample.errors}  {server} {sample.cpu_per_request(server):.2f} ms CPU/req",
                    file=sys.stderr,
                )
    return samples


@dataclasses.dataclass(frozen=True)
class StreamRound:
    """One round of sequential streams to one target."""

    first_token_p50_ms: float
    first_token_p90_ms: float
    total_p50_ms: float
    total_p90_ms: float
    streams: int
    errors: int
    server_cpu_ms_per_stream: float
    """Tollgate's CPU per stream, or the floor's on its rows (c=1, so each stream runs on an idle core)."""


def _stream_round(calls: Sequence[StreamCall], sample: Sample, server: str) -> StreamRound:
    times = [t for call in calls for t in call.times]
    first = [t.first_token_ms for t in times]
    total = [t.total_ms for t in times]
    return StreamRound(
        percentile(first, 50),
        percentile(first, 90),
        percentile(total, 50),
        percentile(total, 90),
        sample.requests,
        sample.errors,
        sample.cpu_per_request(server),
    )


async def streaming(targets: Targets, settings: Settings, clock: CpuClock) -> dict[str, list[StreamRound]]:
    """Time to first token and total time of 20-chunk streams at concurrency 1, direct vs via (and the floor)."""
    rounds: dict[str, list[StreamRound]] = {t: [] for t in (*TARGETS, *FLOOR_TARGETS)}
    for round_no in range(settings.rounds):
        for target in rounds:
            calls = targets.stream_calls(target, 1, settings.stream_scenario)
            try:
                await closed_loop(calls, duration=5, max_requests=3, clock=clock)
                for call in calls:
                    call.times.clear()
                sample = await closed_loop(calls, duration=60, max_requests=settings.stream_count, clock=clock)
            finally:
                _close(calls)
            result = _stream_round(calls, sample, server_of(target))
            rounds[target].append(result)
            print(
                f"  round {round_no + 1} stream {target:<10} ttft p50 {result.first_token_p50_ms:6.2f} ms  "
                f"total p50 {result.total_p50_ms:6.2f} ms  errors {result.errors}",
                file=sys.stderr,
            )
    return rounds


async def stream_cpu(targets: Targets, settings: Settings, clock: CpuClock) -> dict[str, list[Sample]]:
    """Tollgate CPU per 16-chunk stream (no upstream pauses), REST and gRPC, one sample per round."""
    samples: dict[str, list[Sample]] = {"rest": [], "grpc": []}
    for _ in range(settings.rounds):
        for target in samples:
            calls = targets.stream_calls(target, settings.cpu_stream_concurrency, settings.cpu_stream_scenario)
            try:
                sample = await _measure(calls, settings, clock, settings.seconds)
            finally:
                _close(calls)
            samples[target].append(sample)
            print(
                f"  stream CPU {target:<5} {sample.requests} streams, {sample.rps:6.0f} streams/s, "
                f"tollgate {sample.cpu_per_request('tollgate'):.2f} ms CPU/stream, errors {sample.errors}",
                file=sys.stderr,
            )
    return samples


def medians(samples: Sequence[Sample], server: str = "tollgate") -> dict[str, float]:
    """The median over rounds of each figure of a sample; `server` is the process the calls went to."""
    return {
        "rps": median([s.rps for s in samples]),
        "p50_ms": median([s.percentile(50) for s in samples]),
        "p90_ms": median([s.percentile(90) for s in samples]),
        "p99_ms": median([s.percentile(99) for s in samples]),
        "errors": sum(s.errors for s in samples),
        "requests": sum(s.requests for s in samples),
        "server_cpu_ms_per_req": median([s.cpu_per_request(server) for s in samples]),
        "client_core_busy": median([(s.cpu_ms["upstream"] + s.cpu_ms["generator"]) / 10 / s.seconds for s in samples]),
        "server_core_busy": median([s.cpu_ms[server] / 10 / s.seconds for s in samples]),
    }
