"""What one benchmark run does: rounds, durations, concurrencies and stream-capacity sizes."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every knob of a run; `quick()` is the two-minute variant."""

    backend: str = "sqlite"
    """sqlite (a fresh file, limits in process) or postgres (a fresh PostgreSQL database, limits in Redis)."""
    rounds: int = 3
    """Rounds of every interleaved point; medians are reported."""
    seconds: float = 3.0
    """Length of one measured unary run (one target at one concurrency)."""
    warmup_seconds: float = 0.5
    max_requests: int = 30_000
    """Upper bound of requests in one run, whatever its length."""
    concurrencies: tuple[int, ...] = (1, 10, 50, 200)
    floor_concurrencies: tuple[int, ...] = (1, 50)
    """Where the floor (`python -m bench.floor`) is measured too: the latency and the CPU targets' points."""
    stream_count: int = 40
    """Streams per target per round for time to first token (concurrency 1)."""
    stream_scenario: str = "chunks=20, first_byte_ms=20"
    cpu_stream_scenario: str = "chunks=16"
    cpu_stream_concurrency: int = 10
    capacity: tuple[int, ...] = (1_000, 5_000)
    """Numbers of concurrent open streams to hold."""
    hold_seconds: float = 60.0
    capacity_chunk_interval_ms: int = 10_000
    """Upstream gap between chunks of a held stream: the streams are open but mostly idle."""
    open_parallelism: int = 200
    """Streams being opened at once (connect, request, first event) while ramping up."""

    @classmethod
    def quick(cls) -> Settings:
        return cls(rounds=2, seconds=1.5, warmup_seconds=0.3, stream_count=20, capacity=(1_000,), hold_seconds=10.0)
