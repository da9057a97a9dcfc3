"""The relay's failover on hand-written fake providers: tiers, weights, retries, fallbacks, breaker."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from tollgate.v1 import chat_pb2, relay_pb2

from server.config import ChannelConfig, LimitsConfig, ModelConfig, RelayConfig
from server.domain.admission import Admission
from server.domain.billing import Billing
from server.domain.breaker import CircuitBreaker
from server.domain.capacity import ChannelCapacity
from server.domain.catalogue import Catalogue
from server.domain.metering import UsageMeter
from server.domain.records import ApiToken, Funds, Hold, UsageRecord
from server.domain.relay import Relay
from server.domain.retry_budget import RetryBudget
from server.domain.routing import Channel, Router
from server.domain.token_count import prompt_tokens
from server.errors import ContextLengthExceededError, InvalidArgumentError, UpstreamError
from server.limits.memory import MemoryLimiter
from server.providers.base import ChatCall, Deadlines

PRICED = {"input_per_mtok": "1", "output_per_mtok": "2"}
MODELS = {
    "big": ModelConfig(context_window=1000, max_output_tokens=100, fallbacks=("small",), **PRICED),  # type: ignore[arg-type]
    "small": ModelConfig(context_window=1000, max_output_tokens=50, **PRICED),  # type: ignore[arg-type]
    "eyes": ModelConfig(context_window=10_000, max_output_tokens=50, vision=True, **PRICED),  # type: ignore[arg-type]
    "solo": ModelConfig(context_window=1000, max_output_tokens=10, **PRICED),  # type: ignore[arg-type]
}
TOKEN = ApiToken(
    name="t",
    spend_cap_micros=0,
    expires_at=None,
    allowed_models=(),
    allowed_ips=(),
    max_concurrency=0,
    requests_per_minute=0,
    tokens_per_minute=0,
    disabled=False,
    id="tok_1",
    account_id="acc_1",
    key_hash="h",
    masked_key="sk-…",
    spent_micros=0,
    created_at=datetime.now(UTC),
    last_used_at=None,
)


class FakeLedger:
    """A LedgerStore with plenty of money that records settlements."""

    def __init__(self) -> None:
        self.settled: list[tuple[Hold, int, UsageRecord]] = []

    async def account_discount(self, account_id: str) -> str:
        return "1"

    async def place_hold(self, account_id: str, token_id: str, size: Callable[[Funds | None], Hold]) -> bool:
        size(Funds(10**9, None, "1"))
        return True

    async def settle(self, hold: Hold, charge_micros: int, usage: UsageRecord) -> bool:
        self.settled.append((hold, charge_micros, usage))
        return True

    async def expired_holds(self, now: datetime, limit: int) -> list[Hold]:
        return []

    async def list_usage(self, account_id: str, filters: object, before_id: str, limit: int) -> list[UsageRecord]:
        return []

    async def usage_totals(
        self, account_id: str, group_by: str, start_day: str, end_day: str
    ) -> list[dict[str, object]]:
        return []


def _billing(catalogue: Catalogue) -> Billing:
    return Billing(FakeLedger(), catalogue, Decimal(1), timedelta(minutes=15))


class FakeProvider:
    """Fails the first `failures` calls with `error`, then answers; records what it was sent."""

    def __init__(self, name: str, failures: int = 0, error: Exception | None = None) -> None:
        self.name = name
        self.failures = failures
        self.error = error or UpstreamError("boom", retryable=True, upstream_status=500)
        self.calls: list[ChatCall] = []

    async def complete(self, call: ChatCall) -> relay_pb2.CreateChatCompletionResponse:
        self.calls.append(call)
        if self.failures:
            self.failures -= 1
            raise self.error
        return relay_pb2.CreateChatCompletionResponse(id=self.name, model=call.params.model)

    async def stream(self, call: ChatCall) -> AsyncIterator[relay_pb2.StreamChatCompletionResponse]:
        self.calls.append(call)
        if self.failures:
            self.failures -= 1
            raise self.error
        yield relay_pb2.StreamChatCompletionResponse(id=self.name, choices=[chat_pb2.ChatChunkChoice()])
        yield relay_pb2.StreamChatCompletionResponse(id=self.name, usage=chat_pb2.Usage(total_tokens=3))

    async def embed(
        self, request: relay_pb2.CreateEmbeddingRequest, deadlines: Deadlines
    ) -> relay_pb2.CreateEmbeddingResponse:
        raise AssertionError("not used")


def _channel(name: str, provider: FakeProvider, models: tuple[str, ...], **fields: object) -> Channel:
    config = ChannelConfig(name=name, models=models, **fields)  # type: ignore[arg-type]
    capacity = ChannelCapacity(name, 64, queue_seconds=0.1, queue_size=8)
    return Channel(config, provider, CircuitBreaker(failures=2, open_seconds=60), capacity)


def _admission() -> Admission:
    return Admission(MemoryLimiter(), LimitsConfig())


def _relay(channels: list[Channel], **config: object) -> Relay:
    catalogue = Catalogue(MODELS)

    async def no_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    sleeps: list[float] = []
    router = Router(channels, catalogue, random.Random(7))
    relay = Relay(catalogue, router, RelayConfig(**config), _billing(catalogue), _admission(), sleep=no_sleep)  # type: ignore[arg-type]
    relay.sleeps = sleeps  # type: ignore[attr-defined]
    return relay


async def _complete(
    relay: Relay, params: chat_pb2.ChatCompletionParams
) -> tuple[relay_pb2.CreateChatCompletionResponse, UsageMeter]:
    meter = UsageMeter(params.model, prompt_tokens(params), stream=False)  # as the servicer makes it
    return await relay.complete(TOKEN, params, "r", meter), meter


def _params(model: str = "big", text: str = "hi", **fields: object) -> chat_pb2.ChatCompletionParams:
    return chat_pb2.ChatCompletionParams(
        model=model,
        messages=[chat_pb2.ChatMessage(role="user", content=text)],
        **fields,  # type: ignore[arg-type]
    )


async def test_higher_tier_first_then_lower_tier_on_failure() -> None:
    high, low = FakeProvider("high", failures=1), FakeProvider("low")
    relay = _relay([_channel("low", low, ("big",), priority=0), _channel("high", high, ("big",), priority=5)])
    answer, served = await _complete(relay, _params())
    assert (answer.id, served.channel, served.served_model, answer.model) == ("low", "low", "big", "big")
    assert len(high.calls) == 1 and len(low.calls) == 1
    assert len(relay.sleeps) == 1  # type: ignore[attr-defined]  # one backoff before the retry


async def test_a_lone_channel_is_retried_then_the_fallback_model_serves() -> None:
    big = FakeProvider("big", failures=10)
    small = FakeProvider("small")
    relay = _relay([_channel("b", big, ("big",)), _channel("s", small, ("small",))], max_retries=2)
    answer, served = await _complete(relay, _params())
    assert len(big.calls) == 2  # two failures open the breaker; the third attempt is skipped
    assert (served.served_model, served.channel, answer.model) == ("small", "s", "small")
    assert small.calls[0].params.model == "small"


async def test_client_errors_are_not_retried() -> None:
    provider = FakeProvider("p", failures=1, error=InvalidArgumentError("bad request upstream"))
    other = FakeProvider("q")
    relay = _relay([_channel("p", provider, ("big",)), _channel("q", other, ("big",), priority=-1)])
    with pytest.raises(InvalidArgumentError):
        await _complete(relay, _params())
    assert len(provider.calls) == 1 and other.calls == []


async def test_retry_after_within_the_cap_is_honoured() -> None:
    error = UpstreamError("slow down", retryable=True, upstream_status=429, retry_after=3)
    provider = FakeProvider("p", failures=1, error=error)
    relay = _relay([_channel("p", provider, ("big",))])
    await _complete(relay, _params())
    assert relay.sleeps == [3]  # type: ignore[attr-defined]


async def test_retry_budget_exhausted_means_no_retry() -> None:
    provider = FakeProvider("p", failures=1)
    catalogue = Catalogue(MODELS)
    channel = _channel("p", provider, ("solo",))

    async def no_sleep(_: float) -> None:
        return None

    budget = RetryBudget(0.0, reserve=0)
    relay = Relay(
        catalogue,
        Router([channel], catalogue),
        RelayConfig(),
        _billing(catalogue),
        _admission(),
        budget,
        sleep=no_sleep,
    )
    with pytest.raises(UpstreamError):
        await _complete(relay, _params("solo"))
    assert len(provider.calls) == 1


async def test_weights_share_traffic_within_a_tier() -> None:
    heavy, light = FakeProvider("heavy"), FakeProvider("light")
    relay = _relay([_channel("heavy", heavy, ("small",), weight=9), _channel("light", light, ("small",), weight=1)])
    served: Counter[str] = Counter()
    for _ in range(400):
        _, who = await _complete(relay, _params("small"))
        served[who.channel] += 1
    assert 320 <= served["heavy"] <= 390


async def test_renamed_model_and_output_limit_reach_the_provider() -> None:
    provider = FakeProvider("p")
    relay = _relay([_channel("p", provider, ("big",), model_map={"big": "big-2026-01"})])
    await _complete(relay, _params())
    await _complete(relay, _params(max_tokens=7))
    assert [c.params.model for c in provider.calls] == ["big-2026-01", "big-2026-01"]
    assert [c.output_limit for c in provider.calls] == [100, 7]


async def test_context_window_and_images_are_checked_before_any_call() -> None:
    provider = FakeProvider("p")
    relay = _relay([_channel("p", provider, ("big", "eyes"))])
    with pytest.raises(ContextLengthExceededError):
        await _complete(relay, _params(text="x" * 4000))
    with pytest.raises(ContextLengthExceededError):
        await _complete(relay, _params(max_tokens=999))
    image = chat_pb2.ChatMessage(
        role="user", content_parts=[chat_pb2.ContentPart(image_url=chat_pb2.ImageUrl(url="https://x/y.png"))]
    )
    with pytest.raises(InvalidArgumentError, match="does not accept images"):
        await _complete(relay, chat_pb2.ChatCompletionParams(model="big", messages=[image]))
    assert provider.calls == []
    await _complete(relay, chat_pb2.ChatCompletionParams(model="eyes", messages=[image]))


async def test_stream_fails_over_before_the_first_chunk_and_strips_usage_unless_asked() -> None:
    first, second = FakeProvider("first", failures=1), FakeProvider("second")
    relay = _relay([_channel("a", first, ("big",), priority=1), _channel("b", second, ("big",))])
    stream = await relay.stream(TOKEN, _params(), "r1", UsageMeter("big", 1, stream=True))
    chunks = [chunk async for chunk in stream.chunks]
    assert stream.served.channel == "b"
    assert [c.id for c in chunks] == ["second"]
    assert all(c.model == "big" for c in chunks)
    asked = _params(stream_options=chat_pb2.StreamOptions(include_usage=True))
    chunks = [chunk async for chunk in (await relay.stream(TOKEN, asked, "r2", UsageMeter("big", 1, True))).chunks]
    assert chunks[-1].usage.total_tokens == 3


async def test_the_meter_knows_every_ending() -> None:
    relay = _relay([_channel("p", FakeProvider("p"), ("big",))])
    _, meter = await _complete(relay, _params())
    assert (meter.status, meter.channel, meter.served_model) == ("ok", "p", "big")
    failing = _relay([_channel("p", FakeProvider("p", failures=9), ("big",))])
    with pytest.raises(UpstreamError):
        await _complete(failing, _params())
    stream_meter = UsageMeter("big", 12, stream=True)
    stream = await relay.stream(TOKEN, _params(), "r", stream_meter)
    await anext(stream.chunks)
    await stream.chunks.aclose()  # the client left after the first chunk
    assert stream_meter.status == "cancelled"
    assert stream_meter.estimated and stream_meter.usage().prompt_tokens == 12
    refused = UsageMeter("nope", 1, stream=False)
    with pytest.raises(Exception):  # noqa: B017 - any refusal must still settle the meter
        await relay.complete(TOKEN, _params("nope"), "r", refused)
    assert refused.status == "model_not_found"
