"""The relay: a request to the channels that serve its model, with retries, fallbacks and timeouts.

Retries happen only before the first byte reached the client, at most `max_retries` per model,
within the process's retry budget, with exponential backoff and jitter (or the upstream's
Retry-After when it is short). Then the model's fallbacks are tried in order, and the answer
names the model that actually served.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from typing import TypeVar

from tollgate.v1 import chat_pb2, relay_pb2

from server.config import RelayConfig
from server.domain.admission import Admission, Ticket
from server.domain.billing import Billing, Reservation
from server.domain.capacity import ChannelCapacity
from server.domain.catalogue import Catalogue, CatalogueModel
from server.domain.drains import Drains, Pump
from server.domain.metering import UsageMeter
from server.domain.records import ApiToken
from server.domain.retry_budget import RetryBudget
from server.domain.routing import Channel, Router
from server.errors import (
    ContextLengthExceededError,
    InvalidArgumentError,
    OverloadedError,
    TollgateError,
    UpstreamError,
    UpstreamTimeoutError,
)
from server.providers.base import ChatCall, Deadlines

_T = TypeVar("_T")
BACKOFF_BASE_SECONDS = 0.25
BACKOFF_CAP_SECONDS = 4.0
SETTLEMENT_WAIT_SECONDS = 5.0
"""How long a caller waits for its settlement before answering anyway (it goes on, retried, on its own)."""


@dataclasses.dataclass(frozen=True)
class Served:
    """Who answered: the model users know and the channel that served it."""

    model: str
    channel: str


class Settlement:
    """Ends one call exactly once, whoever asks first, even while the asker is being cancelled.

    Gives back what the call held (its channel place, its admission ticket, corrected to the tokens
    used) and settles its hold. When a stream's client left while its upstream still streams, the
    upstream is drained first (drains.py): the asker does not wait for that, the settlement does; the
    client's concurrency slot is freed at once, the channel place and the rest of the ticket when the
    drain ends.
    """

    def __init__(
        self, start: Callable[[Awaitable[None]], asyncio.Task[int]], ticket: Ticket, meter: UsageMeter
    ) -> None:
        self._start = start
        self._ticket = ticket
        self._meter = meter
        self._place: ChannelCapacity | None = None
        self._pump: tuple[Pump, Drains] | None = None
        self._drain: asyncio.Task[None] | None = None
        self._task: asyncio.Task[int] | None = None

    def keep_place(self, capacity: ChannelCapacity) -> None:
        """The call holds a place on this channel until it ends (a stream)."""
        self._place = capacity

    def watch(self, pump: Pump, drains: Drains) -> None:
        """A stream's upstream reader: if it still runs when the call ends, the client left and it drains."""
        self._pump = (pump, drains)

    async def __call__(self) -> None:
        if self._task is None:
            if self._pump is not None and not self._pump[0].task.done():
                pump, drains = self._pump
                self._drain = drains.adopt(pump)
                self._ticket.release_slot()  # the client has gone: its slot is free while Tollgate drains
            self._task = self._start(self._ended())
        if self._drain is None or self._drain.done():
            # Usually settled at once, so the caller's answer and its usage row agree; while the
            # database is out, the settlement keeps retrying on its own and the answer goes out.
            done, _ = await asyncio.wait([self._task], timeout=SETTLEMENT_WAIT_SECONDS)
            if done:
                self._task.result()

    async def _ended(self) -> None:
        """Waits for a drain, then gives back the channel place and the admission ticket."""
        if self._drain is not None:
            await asyncio.wait([self._drain])
        if self._place is not None:
            self._place.release()
        usage = self._meter.usage()
        self._ticket.finish(usage.prompt_tokens + usage.completion_tokens)


@dataclasses.dataclass
class ChatStream:
    """A started stream: its chunks, who serves it, and its settlement."""

    chunks: AsyncGenerator[relay_pb2.StreamChatCompletionResponse, None]
    served: Served
    settle: Settlement

    async def close(self) -> None:
        """Ends the stream (if the consumer stopped early) and settles the call."""
        await self.chunks.aclose()
        await self.settle()


class Relay:
    """Relays chat completions and embeddings for an authenticated token."""

    def __init__(
        self,
        catalogue: Catalogue,
        router: Router,
        config: RelayConfig,
        billing: Billing,
        admission: Admission,
        budget: RetryBudget | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._catalogue = catalogue
        self._router = router
        self._config = config
        self._billing = billing
        self._admission = admission
        self._budget = budget or RetryBudget(config.retry_budget_ratio)
        self._sleep = sleep
        self.drains = Drains(config.disconnect_drain_seconds, config.max_disconnect_drains)

    async def complete(
        self, token: ApiToken, params: chat_pb2.ChatCompletionParams, request_id: str, meter: UsageMeter
    ) -> relay_pb2.CreateChatCompletionResponse:
        """A whole answer, paid for by a hold and settled once; `meter` learns how the call went."""
        with metered(meter):
            model = self._chat_model(token, params, meter.prompt_estimate)
            reservation, settle = await self.admit(token, model, meter, _requested_output(params), request_id)
        try:
            with metered(meter):

                async def attempt(channel: Channel, served: CatalogueModel) -> relay_pb2.CreateChatCompletionResponse:
                    call = self._call(channel, served, params, request_id, reservation.output_limit)
                    return await channel.provider.complete(call)

                answer, served = await self.failover(model, token.account_id, attempt)
                answer.model = served.model
                meter.served_model, meter.channel = served.model, served.channel
                meter.saw_answer(answer)
                return answer
        finally:
            await settle()

    async def stream(
        self, token: ApiToken, params: chat_pb2.ChatCompletionParams, request_id: str, meter: UsageMeter
    ) -> ChatStream:
        """Opens a stream: returns once the first chunk is in, so failures before it can still fail over.

        The meter watches every chunk and learns how the stream ended, including a client that left;
        the call is settled when the stream ends, however it ends.
        """
        with metered(meter):
            model = self._chat_model(token, params, meter.prompt_estimate)
            reservation, settle = await self.admit(token, model, meter, _requested_output(params), request_id)
        try:
            with metered(meter, until_success=False):
                return await self._open_stream(
                    model, token.account_id, params, request_id, meter, reservation.output_limit, settle
                )
        except BaseException:
            await settle()
            raise

    async def _open_stream(
        self,
        model: CatalogueModel,
        account_id: str,
        params: chat_pb2.ChatCompletionParams,
        request_id: str,
        meter: UsageMeter,
        output_limit: int,
        settle: Settlement,
    ) -> ChatStream:
        async def attempt(
            channel: Channel, served: CatalogueModel
        ) -> tuple[relay_pb2.StreamChatCompletionResponse, AsyncIterator[relay_pb2.StreamChatCompletionResponse]]:
            chunks = aiter(channel.provider.stream(self._call(channel, served, params, request_id, output_limit)))
            try:
                return await anext(chunks), chunks
            except StopAsyncIteration:
                raise UpstreamError(f"channel {channel.name} sent an empty stream", retryable=True) from None

        (first, rest), served = await self.failover(model, account_id, attempt, keep_place=settle.keep_place)
        meter.served_model, meter.channel = served.model, served.channel
        include_usage = params.stream_options.include_usage
        meter.saw_chunk(first)
        pump = Pump(rest, meter)
        settle.watch(pump, self.drains)
        return ChatStream(_relabelled(first, pump, served.model, include_usage, meter, settle), served, settle)

    async def embed(
        self, token: ApiToken, request: relay_pb2.CreateEmbeddingRequest, request_id: str, meter: UsageMeter
    ) -> relay_pb2.CreateEmbeddingResponse:
        """Embeddings, paid for like chat: a hold on the input estimate, settled from the reported usage."""
        with metered(meter):
            model = self._catalogue.get(request.model, token)
            if model.config.kind != "embedding":
                raise InvalidArgumentError(f"{model.id} is not an embedding model", param="model")
            _, settle = await self.admit(token, model, meter, 0, request_id)
        try:
            with metered(meter):

                async def attempt(channel: Channel, served: CatalogueModel) -> relay_pb2.CreateEmbeddingResponse:
                    upstream = relay_pb2.CreateEmbeddingRequest()
                    upstream.CopyFrom(request)
                    upstream.model = channel.upstream_model(served.id)
                    return await channel.provider.embed(upstream, self.deadlines(served))

                answer, served = await self.failover(model, token.account_id, attempt)
                answer.model = served.model
                meter.served_model, meter.channel = served.model, served.channel
                meter.saw_embeddings(answer.usage.prompt_tokens)
                return answer
        finally:
            await settle()

    @property
    def catalogue(self) -> Catalogue:
        return self._catalogue

    async def admit(
        self, token: ApiToken, model: CatalogueModel, meter: UsageMeter, requested_output: int, request_id: str
    ) -> tuple[Reservation, Settlement]:
        """Admission first (limits), then the hold; a refused hold gives the admission back."""
        ticket = await self._admission.admit(token, request_id, meter.prompt_estimate + requested_output)
        try:
            reservation = await self._billing.reserve(token, model, meter.prompt_estimate, requested_output, request_id)
        except BaseException:
            ticket.finish(0)
            raise
        return reservation, Settlement(
            lambda ended: self._billing.start_settlement(reservation, meter, token, after=ended), ticket, meter
        )

    def _chat_model(self, token: ApiToken, params: chat_pb2.ChatCompletionParams, prompt: int) -> CatalogueModel:
        """The model the call may use; `prompt` is the meter's estimate of the prompt (tools make it costly twice)."""
        model = self._catalogue.get(params.model, token)
        if model.config.kind != "chat":
            raise InvalidArgumentError(f"{model.id} is not a chat model", param="model")
        if not params.messages:
            raise InvalidArgumentError("messages must not be empty", param="messages")
        if not model.config.vision and _has_images(params):
            raise InvalidArgumentError(f"{model.id} does not accept images", param="messages")
        window = model.config.context_window
        needed = prompt + (_requested_output(params) or 1)
        if window and needed > window:
            raise ContextLengthExceededError(
                f"this request needs about {needed} tokens but {model.id} has a context window of {window}",
                param="messages",
            )
        return model

    def _call(
        self,
        channel: Channel,
        model: CatalogueModel,
        params: chat_pb2.ChatCompletionParams,
        request_id: str,
        output_limit: int,
    ) -> ChatCall:
        upstream = chat_pb2.ChatCompletionParams()
        upstream.CopyFrom(params)
        upstream.model = channel.upstream_model(model.id)
        if not _requested_output(params):
            upstream.max_tokens = output_limit  # the hold pays for this much output and no more
        return ChatCall(upstream, self.deadlines(model), request_id, output_limit=output_limit)

    def deadlines(self, model: CatalogueModel) -> Deadlines:
        config = self._config
        if model.config.reasoning:
            first, idle, total = (
                config.reasoning_first_byte_timeout_seconds,
                config.reasoning_idle_timeout_seconds,
                config.reasoning_total_timeout_seconds,
            )
        else:
            first, idle, total = (
                config.first_byte_timeout_seconds,
                config.idle_timeout_seconds,
                config.total_timeout_seconds,
            )
        return Deadlines(config.connect_timeout_seconds, first, idle, total, config.stream_max_seconds)

    async def failover(
        self,
        model: CatalogueModel,
        account_id: str,
        attempt: Callable[[Channel, CatalogueModel], Awaitable[_T]],
        keep_place: Callable[[ChannelCapacity], None] | None = None,
    ) -> tuple[_T, Served]:
        """The first answer from the model's channels, then its fallbacks'.

        Each attempt takes a place in the channel's capacity (waiting briefly, fairly across accounts),
        given back when the attempt ends, or handed to `keep_place` when the answer outlives it (a stream).
        """
        self._budget.attempted()
        last: TollgateError | None = None
        busy: OverloadedError | None = None
        retry_in: float | None = None
        for candidate in [model, *(self._catalogue.get(name, None) for name in model.config.fallbacks)]:
            tries = 0
            for channel in self._attempts(candidate):
                if tries > 0:
                    if not self._budget.try_spend():
                        break
                    await self._sleep(self._backoff(tries, last))
                try:
                    await channel.capacity.acquire(account_id)
                except OverloadedError as exc:
                    busy = exc
                    continue
                if not channel.breaker.allow():
                    channel.capacity.release()
                    retry_in = min(retry_in or 1e9, channel.breaker.retry_in() or 1.0)
                    continue
                tries += 1
                try:
                    answer = await attempt(channel, candidate)
                except (UpstreamError, UpstreamTimeoutError) as exc:
                    channel.capacity.release()
                    channel.breaker.failed()
                    if _pushed_back(exc):
                        channel.capacity.overloaded()
                    last = exc
                    continue
                except TollgateError:
                    channel.capacity.release()
                    channel.breaker.succeeded()  # the upstream judged the request itself: the channel works
                    raise
                except BaseException:
                    channel.capacity.release()
                    raise
                channel.breaker.succeeded()
                channel.capacity.succeeded()
                if keep_place is None:
                    channel.capacity.release()
                else:
                    keep_place(channel.capacity)
                return answer, Served(candidate.id, channel.name)
        if last is not None:
            raise last
        if busy is not None:
            raise busy
        raise UpstreamError(
            f"no healthy channel serves {model.id} right now", retryable=True, retry_after=retry_in or 1.0
        )

    def _attempts(self, model: CatalogueModel) -> list[Channel]:
        """Channels in order, cycled so that a lone channel is retried too: 1 + max_retries in all."""
        ordered = self._router.order(model.id)
        if not ordered:
            return []
        total = 1 + self._config.max_retries
        return [ordered[index % len(ordered)] for index in range(total)]

    def _backoff(self, tries: int, last: TollgateError | None) -> float:
        if isinstance(last, UpstreamError) and last.retry_after is not None:
            return min(last.retry_after, self._config.retry_after_cap_seconds)
        ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (tries - 1))
        return random.uniform(ceiling / 2, ceiling)


def _pushed_back(error: UpstreamError | UpstreamTimeoutError) -> bool:
    """The channel said it has too much to do: 429, 529 (Anthropic's overloaded), 503, or no answer in time."""
    return isinstance(error, UpstreamTimeoutError) or error.upstream_status in (429, 503, 529)


def _requested_output(params: chat_pb2.ChatCompletionParams) -> int:
    if params.HasField("max_completion_tokens"):
        return params.max_completion_tokens
    if params.HasField("max_tokens"):
        return params.max_tokens
    return 0


def _has_images(params: chat_pb2.ChatCompletionParams) -> bool:
    return any(part.HasField("image_url") for message in params.messages for part in message.content_parts)


async def _relabelled(
    first: relay_pb2.StreamChatCompletionResponse,
    pump: Pump,
    model: str,
    include_usage: bool,
    meter: UsageMeter,
    settle: Settlement,
) -> AsyncGenerator[relay_pb2.StreamChatCompletionResponse, None]:
    """The chunks with the served model's public id; the usage chunk only if the client asked for it.

    However the stream ends, the meter records it and the call is settled (after a drain if the client left).
    """
    rest = pump.chunks()
    try:
        with metered(meter):
            chunk: relay_pb2.StreamChatCompletionResponse | None = first
            while chunk is not None:
                if include_usage or chunk.choices or not chunk.HasField("usage"):
                    chunk.model = model
                    yield chunk
                chunk = await anext(rest, None)
    finally:
        await rest.aclose()
        await settle()


@contextlib.contextmanager
def metered(meter: UsageMeter, *, until_success: bool = True) -> Iterator[None]:
    """Records on the meter how the block ended: ok (unless `until_success` is False), an error code, cancelled."""
    try:
        yield
    except TollgateError as exc:
        meter.finish(exc.reason)
        raise
    except (asyncio.CancelledError, GeneratorExit):
        meter.finish("cancelled")
        raise
    except Exception:
        meter.finish("internal_error")
        raise
    if until_success:
        meter.finish()
