"""The targets of issue 5 next to the measured values, as a printed table and a JSON document."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.capacity import Capacity
from bench.load import median
from bench.scenarios import StreamRound

PACKAGES = ("grpcio", "protobuf", "httpx", "uvicorn", "starlette", "httptools", "uvloop", "orjson")


@dataclasses.dataclass(frozen=True)
class Check:
    """One target: what is measured, the bound, and whether the measured value meets it."""

    name: str
    measured: float
    bound: float
    unit: str
    at_least: bool = False
    floor: float | None = None
    """The same measure of the floor (the stack relaying with none of Tollgate's work), when the run has it."""

    @property
    def passed(self) -> bool:
        return self.measured >= self.bound if self.at_least else self.measured <= self.bound

    def row(self) -> str:
        sign = ">=" if self.at_least else "<="
        verdict = "PASS" if self.passed else "MISS"
        floor = "" if self.floor is None else f"{self.floor:.2f} {self.unit}"
        measured = f"{self.measured:.2f} {self.unit}"
        return f"| {self.name} | {sign} {self.bound:g} {self.unit} | {measured} | {floor} | {verdict} |"


def machine() -> dict[str, Any]:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "absent"
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "packages": versions,
    }


def stream_medians(rounds: list[StreamRound]) -> dict[str, float]:
    return {field.name: median([getattr(r, field.name) for r in rounds]) for field in dataclasses.fields(StreamRound)}


def checks(
    unary: Mapping[str, Mapping[int, Mapping[str, float]]],
    streams: Mapping[str, Mapping[str, float]],
    stream_cpu: Mapping[str, Mapping[str, float]],
    capacity: list[Capacity],
) -> list[Check]:
    """Every target of issue 5 against this run (REST is the headline; gRPC rows are shown beside it)."""
    found: list[Check] = []
    for via in ("rest", "grpc"):
        floor = f"floor-{via}"
        measures: list[tuple[str, float | None, float | None, float, str, bool]] = [
            ("added p50, unary c=1", _added(unary, via, "p50_ms"), _added(unary, floor, "p50_ms"), 1, "ms", False),
            ("added p99, unary c=1", _added(unary, via, "p99_ms"), _added(unary, floor, "p99_ms"), 3, "ms", False),
            ("throughput, unary c=50", _at_50(unary, via, "rps"), _at_50(unary, floor, "rps"), 900, "req/s", True),
            (
                "Tollgate CPU per unary request, c=50",
                _at_50(unary, via, "server_cpu_ms_per_req"),
                _at_50(unary, floor, "server_cpu_ms_per_req"),
                1,
                "ms",
                False,
            ),
            ("Tollgate CPU per 16-chunk stream, c=10", stream_cpu[via]["server_cpu_ms_per_req"], None, 3, "ms", False),
            (
                "added time to first token, upstream first byte 20 ms",
                _first_token(streams, via),
                _first_token(streams, floor),
                1,
                "ms",
                False,
            ),
        ]
        for name, measured, floor_value, bound, unit, at_least in measures:
            if measured is not None:
                found.append(Check(f"{name} ({via})", measured, bound, unit, at_least, floor_value))
    for held in capacity:
        found.append(Check(f"RSS per open stream, {held.streams} streams", held.rss_per_stream_kib, 100, "KiB"))
        found.append(Check(f"errors, {held.streams} open streams", held.errors, 0, ""))
    return found


def _added(unary: Mapping[str, Mapping[int, Mapping[str, float]]], by: str, field: str) -> float | None:
    """`field` at c=1 less the direct call's, if `by` ran at c=1."""
    runs = unary.get(by, {})
    return runs[1][field] - unary["direct"][1][field] if 1 in runs else None


def _at_50(unary: Mapping[str, Mapping[int, Mapping[str, float]]], by: str, field: str) -> float | None:
    runs = unary.get(by, {})
    return runs[50][field] if 50 in runs else None


def _first_token(streams: Mapping[str, Mapping[str, float]], by: str) -> float | None:
    """Median time to first token less the direct call's, if `by` streamed."""
    if by not in streams:
        return None
    return streams[by]["first_token_p50_ms"] - streams["direct"]["first_token_p50_ms"]


def _header(*columns: str) -> list[str]:
    return ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]


def unary_table(unary: Mapping[str, Mapping[int, Mapping[str, float]]]) -> list[str]:
    rows = _header(
        "c",
        "target",
        "req/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "added p50",
        "added p99",
        "p50 ratio",
        "server CPU ms/req",
        "errors",
        "core0 / core1 busy %",
    )
    for concurrency in unary["direct"]:
        direct = unary["direct"][concurrency]
        for target in unary:
            if concurrency not in unary[target]:
                continue
            m = unary[target][concurrency]
            added = target != "direct"
            rows.append(
                f"| {concurrency} | {target} | {m['rps']:.0f} | {m['p50_ms']:.2f} | {m['p90_ms']:.2f} | "
                f"{m['p99_ms']:.2f} | "
                + (
                    f"{m['p50_ms'] - direct['p50_ms']:+.2f} | {m['p99_ms'] - direct['p99_ms']:+.2f} | "
                    f"{m['p50_ms'] / direct['p50_ms']:.2f}x | {m['server_cpu_ms_per_req']:.2f} | "
                    if added
                    else "| | | | "
                )
                + f"{m['errors']:.0f} | {m['server_core_busy']:.0f} / {m['client_core_busy']:.0f} |"
            )
    return rows


def stream_table(streams: Mapping[str, Mapping[str, float]]) -> list[str]:
    rows = _header(
        "target",
        "TTFT p50 ms",
        "TTFT p90 ms",
        "added TTFT p50",
        "total p50 ms",
        "total p90 ms",
        "added total p50",
        "errors",
    )
    direct = streams["direct"]
    for target, m in streams.items():
        rows.append(
            f"| {target} | {m['first_token_p50_ms']:.2f} | {m['first_token_p90_ms']:.2f} | "
            f"{m['first_token_p50_ms'] - direct['first_token_p50_ms']:+.2f} | {m['total_p50_ms']:.2f} | "
            f"{m['total_p90_ms']:.2f} | {m['total_p50_ms'] - direct['total_p50_ms']:+.2f} | {m['errors']:.0f} |"
        )
    return rows


def capacity_table(capacity: list[Capacity]) -> list[str]:
    rows = _header(
        "open streams",
        "opened",
        "errors",
        "ramp s",
        "held s",
        "RSS before MiB",
        "RSS during MiB",
        "KiB/stream",
        "Tollgate CPU % while held",
        "upstream still open after close",
    )
    for c in capacity:
        rows.append(
            f"| {c.streams} | {c.opened} | {c.errors} | {c.open_seconds:.1f} | {c.hold_seconds:.0f} | "
            f"{c.rss_before_kib / 1024:.1f} | {c.rss_during_kib / 1024:.1f} | {c.rss_per_stream_kib:.1f} | "
            f"{c.tollgate_cpu_percent:.1f} | {c.upstream_open_after_close} |"
        )
    return rows


def target_table(found: list[Check]) -> list[str]:
    header = [
        "| target | bound | measured | floor (no Tollgate work) | verdict |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    return [*header, *(c.row() for c in found)]
