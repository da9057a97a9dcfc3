"""Prometheus metrics of one process: calls, relayed usage and cost, channels, limits, holds, the reaper.

Counters and histograms are updated where things happen (every gRPC call at the edge, every
relayed call at its settlement); states (breakers, channel allowances, open requests, open holds,
the limiter's outage mode) are read when scraped. Labels are bounded sets — method, status code,
model, channel — never tokens, accounts or anything a client writes. Each process has its own
registry, so several Tollgates in one test process do not mix their numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from server.domain.records import UsageRecord
from server.domain.routing import Channel

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 180)
BREAKER_STATES = ("closed", "half_open", "open")


class ProcessState(Protocol):
    """What the scrape reads off the running domain."""

    @property
    def open_requests(self) -> int: ...

    @property
    def open_holds(self) -> int: ...

    @property
    def reaped_holds(self) -> int: ...

    @property
    def limiter_degraded(self) -> bool: ...

    @property
    def limiter_fallback_decisions(self) -> int: ...

    @property
    def revocations_listening(self) -> bool: ...


class Metrics:
    """The registry and the instruments updated as calls happen."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._rpcs = Counter(
            "tollgate_rpc_requests", "gRPC calls (REST calls included) by method and status code",
            ["method", "code"], registry=self.registry,
        )  # fmt: skip
        self._rpc_seconds = Histogram(
            "tollgate_rpc_duration_seconds", "Time to answer (or to end the stream) by method",
            ["method"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self._calls = Counter(
            "tollgate_relay_calls", "Relayed calls settled, by requested model and status",
            ["model", "status"], registry=self.registry,
        )  # fmt: skip
        self._latency = Histogram(
            "tollgate_relay_latency_seconds", "Relayed call latency by served model",
            ["model"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self._ttft = Histogram(
            "tollgate_relay_time_to_first_token_seconds", "Time to the first token by served model",
            ["model"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self._tokens = Counter(
            "tollgate_relay_tokens", "Tokens billed by served model and kind",
            ["model", "kind"], registry=self.registry,
        )  # fmt: skip
        self._cost = Counter(
            "tollgate_relay_cost_micros", "Micro-USD charged by served model", ["model"], registry=self.registry
        )
        self._children: dict[tuple[Any, tuple[str, ...]], Any] = {}

    def _child(self, metric: Any, *values: str) -> Any:
        """`metric.labels(*values)`, remembered: labels() validates, locks and builds a key on every call."""
        key = (metric, values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def rpc_finished(self, method: str, code: str, seconds: float) -> None:
        self._child(self._rpcs, method, code).inc()
        self._child(self._rpc_seconds, method).observe(seconds)

    def call_settled(self, record: UsageRecord) -> None:
        """One relayed call's row, as the ledger recorded it."""
        model = record.served_model or record.requested_model or "-"
        self._child(self._calls, record.requested_model or "-", record.status).inc()
        self._child(self._latency, model).observe(record.latency_ms / 1000)
        if record.time_to_first_token_ms is not None:
            self._child(self._ttft, model).observe(record.time_to_first_token_ms / 1000)
        for kind, count in (
            ("input", record.input_tokens),
            ("cached", record.cached_tokens),
            ("cache_write", record.cache_write_tokens),
            ("output", record.output_tokens),
            ("reasoning", record.reasoning_tokens),
        ):
            if count:
                self._child(self._tokens, model, kind).inc(count)
        if record.cost_micros:
            self._child(self._cost, model).inc(record.cost_micros)

    def watch(self, channels: Sequence[Channel], state: ProcessState) -> None:
        """Reads these on every scrape."""
        self.registry.register(_StateCollector(channels, state))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _StateCollector(Collector):
    def __init__(self, channels: Sequence[Channel], state: ProcessState) -> None:
        self._channels = channels
        self._state = state

    def collect(self) -> Iterable[Metric]:
        breaker = GaugeMetricFamily(
            "tollgate_channel_breaker_state", "1 for the breaker's current state", labels=["channel", "state"]
        )
        failures = CounterMetricFamily(
            "tollgate_channel_upstream_errors", "Upstream failures (errors, timeouts) by channel", labels=["channel"]
        )
        allowed = GaugeMetricFamily(
            "tollgate_channel_allowed_concurrency", "Adaptive concurrency allowance", labels=["channel"]
        )
        in_flight = GaugeMetricFamily("tollgate_channel_in_flight", "Calls in flight", labels=["channel"])
        for channel in self._channels:
            name = channel.config.name
            for breaker_state in BREAKER_STATES:
                breaker.add_metric([name, breaker_state], float(channel.breaker.state == breaker_state))
            failures.add_metric([name], channel.breaker.failures_total)
            allowed.add_metric([name], channel.capacity.allowed)
            in_flight.add_metric([name], channel.capacity.in_flight)
        yield from (breaker, failures, allowed, in_flight)
        state = self._state
        yield from (
            _gauge("tollgate_open_requests", "Relayed calls open in this process", state.open_requests),
            _gauge("tollgate_open_holds", "Holds placed by this process and not yet settled", state.open_holds),
            _counter("tollgate_reaper_settled_holds", "Abandoned holds the reaper settled", state.reaped_holds),
            _gauge("tollgate_limiter_degraded", "1 while Redis is out and limits are per process",
                   float(state.limiter_degraded)),
            _counter("tollgate_limiter_fallback_decisions", "Admission decisions taken without Redis",
                     state.limiter_fallback_decisions),
            _gauge("tollgate_revocations_listening", "1 while this process hears revocations from other replicas",
                   float(state.revocations_listening)),
        )  # fmt: skip


def _gauge(name: str, documentation: str, value: float) -> Metric:
    return GaugeMetricFamily(name, documentation, value=value)


def _counter(name: str, documentation: str, value: float) -> Metric:
    return CounterMetricFamily(name, documentation, value=value)
