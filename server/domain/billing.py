"""Billing: an atomic hold before a call, exactly one settlement after it, at the served model's price.

The hold is an upper bound of the cost: the prompt estimate with a safety margin at the dearest input
price, plus the output limit at the output price, for the model and any of its fallbacks. When the
client sets no output limit, the model's limit is lowered to what the balance can pay, and that limit is
sent upstream. The charge never exceeds the hold; usage the upstream reports wins over the estimate
unless it is implausible, and an estimate is calibrated by the model's reported calls (calibration.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from server.domain.calibration import Calibration
from server.domain.catalogue import Catalogue, CatalogueModel
from server.domain.clock import utcnow
from server.domain.ids import new_id
from server.domain.metering import UsageMeter
from server.domain.paging import Page, fetch_page
from server.domain.pricing import Price, TokenCounts, affordable_output, cost_micros, parse_price
from server.domain.records import ApiToken, Funds, Hold, UsageRecord
from server.errors import (
    DatabaseUnavailableError,
    FailedPreconditionError,
    InsufficientQuotaError,
    InvalidArgumentError,
)
from server.storage.base import LedgerStore

log = logging.getLogger(__name__)
PROMPT_MARGIN = Decimal("1.25")
SETTLE_RETRY_FIRST_SECONDS = 0.25
SETTLE_RETRY_MAX_SECONDS = 5.0
PROMPT_SLACK_TOKENS = 16
MIN_OUTPUT_TOKENS = 16
DISCOUNTED_PRICES_KEPT = 1024


@dataclasses.dataclass(frozen=True)
class Reservation:
    """A placed hold, the output limit it pays for, and the prices the call will be charged at."""

    hold: Hold
    output_limit: int
    """The output tokens the hold pays for; sent upstream when the client set no limit."""
    prices: Mapping[str, Price]
    """Discounted prices of the model and its fallbacks, by model id."""


class Billing:
    """Holds and settlements for relayed calls."""

    def __init__(
        self,
        store: LedgerStore,
        catalogue: Catalogue,
        site_discount: Decimal,
        hold_lifetime: timedelta,
        on_settled: Callable[[UsageRecord], None] = lambda record: None,
    ) -> None:
        self._store = store
        self._on_settled = on_settled
        self.open_holds = 0
        """Holds this process placed and has not settled yet."""
        self.reaped_holds = 0
        """Abandoned holds this process's reaper settled."""
        self._catalogue = catalogue
        self._site_discount = site_discount
        self._hold_lifetime = hold_lifetime
        self._settling: set[asyncio.Task[int]] = set()
        self.calibration = Calibration()
        """Scales estimated usage by what each model's reported usage taught."""
        self._prices: dict[str, Price] = {}
        self._discounted_prices: dict[tuple[str, str], tuple[Mapping[str, Price], Price]] = {}
        for model_id in catalogue.ids():
            price = parse_price(model_id, catalogue.get(model_id, None).config)
            if price is not None:
                self._prices[model_id] = price

    def upstream_price(self, model_id: str) -> Price | None:
        return self._prices.get(model_id)

    async def reserve(
        self, token: ApiToken, model: CatalogueModel, prompt_tokens: int, requested_output: int, request_id: str
    ) -> Reservation:
        """Places the hold; raises InsufficientQuotaError (402) when the balance or cap cannot pay for it."""
        sized: list[Reservation] = []

        def size(funds: Funds | None) -> Hold:
            sized.append(self._size(token, model, prompt_tokens, requested_output, request_id, funds))
            return sized[-1].hold

        if not await self._store.place_hold(token.account_id, token.id, size):
            raise _account_cannot_pay()  # disabled since its key was checked; `_size` refuses the unaffordable
        self.open_holds += 1
        return sized[-1]

    def _size(
        self,
        token: ApiToken,
        model: CatalogueModel,
        prompt_tokens: int,
        requested_output: int,
        request_id: str,
        funds: Funds | None,
    ) -> Reservation:
        """The hold a call needs and the output limit it pays for, at the account's prices; 402 if unaffordable."""
        if funds is None:
            raise _account_cannot_pay()
        prices, bound = self._discounted(model, funds.discount)
        prompt_upper = math.ceil(prompt_tokens * PROMPT_MARGIN) + PROMPT_SLACK_TOKENS
        prompt_micros = math.ceil(prompt_upper * max(bound.input, bound.cache_write))
        budget = funds.budget_micros
        if requested_output:
            output_limit = requested_output
        else:
            output_limit = min(model.config.max_output_tokens, affordable_output(bound, budget, prompt_micros))
            if output_limit < min(MIN_OUTPUT_TOKENS, model.config.max_output_tokens):
                raise _insufficient(
                    funds.token_remaining_micros is not None and funds.budget_micros < funds.available_micros
                )
        amount = math.ceil(prompt_micros + output_limit * bound.output)
        if amount > budget:
            raise _insufficient(funds.token_remaining_micros is not None and funds.token_remaining_micros < amount)
        now = utcnow()
        hold = Hold(request_id, token.account_id, token.id, amount, now, now + self._hold_lifetime)
        return Reservation(hold, output_limit, prices)

    def start_settlement(
        self, reservation: Reservation, meter: UsageMeter, token: ApiToken, after: Awaitable[None]
    ) -> asyncio.Task[int]:
        """Settles, once `after` is done (a drain), in a task of its own, tracked, so a cancelled caller cannot
        cut a settlement in half."""
        task = asyncio.create_task(
            self._settle_after(after, reservation, meter, token), name=f"settle {reservation.hold.request_id}"
        )
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)
        return task

    async def _settle_after(
        self, after: Awaitable[None], reservation: Reservation, meter: UsageMeter, token: ApiToken
    ) -> int:
        await after
        return await self.settle(reservation, meter, token)

    async def drain(self, timeout: float) -> None:
        """Waits for settlements still running (at shutdown, before the store closes)."""
        if self._settling:
            await asyncio.wait(set(self._settling), timeout=timeout)

    async def settle(self, reservation: Reservation, meter: UsageMeter, token: ApiToken) -> int:
        """Charges the call once (a second settlement is a no-op) and records its usage row; returns the charge."""
        usage = self.calibration.usage(meter)
        tokens = TokenCounts.from_usage(usage)
        served = meter.served_model or meter.requested_model
        price = reservation.prices.get(served) or reservation.prices[meter.requested_model]
        charge = min(cost_micros(price, tokens), reservation.hold.amount_micros)
        record = UsageRecord(
            id=new_id("use"),
            request_id=reservation.hold.request_id,
            account_id=token.account_id,
            token_id=token.id,
            token_name=token.name,
            requested_model=meter.requested_model,
            served_model=meter.served_model,
            channel=meter.channel,
            stream=meter.stream,
            input_tokens=tokens.input,
            cached_tokens=tokens.cached,
            cache_write_tokens=tokens.cache_write,
            output_tokens=tokens.output,
            reasoning_tokens=tokens.reasoning,
            cost_micros=charge,
            estimated=meter.estimated,
            status=meter.status,
            latency_ms=meter.latency_ms(),
            time_to_first_token_ms=meter.time_to_first_token_ms(),
            client_ip=meter.client_ip,
            created_at=utcnow(),
        )
        try:
            if await self._settle_when_possible(reservation.hold, charge, record):
                self._on_settled(record)
        finally:
            self.open_holds -= 1
        return charge

    async def _settle_when_possible(self, hold: Hold, charge: int, record: UsageRecord) -> bool:
        """Writes the settlement, retrying while the database is out, until the hold would be the reaper's.

        Retrying is safe: a settlement is conditional on the hold being open, so it lands at most once.
        """
        delay = SETTLE_RETRY_FIRST_SECONDS
        while True:
            try:
                return await self._store.settle(hold, charge, record)
            except DatabaseUnavailableError:
                if utcnow() + timedelta(seconds=delay) >= hold.expires_at:
                    raise
                log.warning("settlement of %s waits for the database (retry in %.1f s)", hold.request_id, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, SETTLE_RETRY_MAX_SECONDS)

    async def reap(self, limit: int = 100) -> int:
        """Settles holds whose process died before settling them: released at no charge, logged as abandoned.

        Nothing is known of what such a call used; the customer is not charged for Tollgate's crash.
        Settlement is conditional on the hold being open, so a reaper and a late settlement never both win.
        """
        reaped = 0
        for hold in await self._store.expired_holds(utcnow(), limit):
            record = UsageRecord(
                id=new_id("use"),
                request_id=hold.request_id,
                account_id=hold.account_id,
                token_id=hold.token_id,
                token_name="",
                requested_model="",
                served_model="",
                channel="",
                stream=False,
                input_tokens=0,
                cached_tokens=0,
                cache_write_tokens=0,
                output_tokens=0,
                reasoning_tokens=0,
                cost_micros=0,
                estimated=True,
                status="abandoned",
                latency_ms=0,
                time_to_first_token_ms=None,
                client_ip="",
                created_at=utcnow(),
            )
            reaped += await self._store.settle(hold, 0, record)
        self.reaped_holds += reaped
        return reaped

    async def usage(self, account_id: str, filters: Mapping[str, Any], size: int, page_token: str) -> Page[UsageRecord]:
        """The account's usage rows, newest first, filtered, one page at a time."""
        return await fetch_page(
            lambda before_id, limit: self._store.list_usage(account_id, filters, before_id, limit), size, page_token
        )

    async def totals(self, account_id: str, group_by: str, start: date, end: date) -> list[dict[str, Any]]:
        """Pre-aggregated totals between two UTC days, both included."""
        if end < start:
            raise InvalidArgumentError("end_time must not be before start_time", param="end_time")
        return await self._store.usage_totals(account_id, group_by, start.isoformat(), end.isoformat())

    async def price_list(self, account_id: str) -> tuple[list[tuple[str, Price, Price]], Decimal, Decimal]:
        """(model, upstream price, price after discounts) for every priced model, and both discounts."""
        discount = Decimal((await self._store.account_discount(account_id)) or "1")
        total = self._site_discount * discount
        rows = [(model_id, price, price.scaled(total)) for model_id, price in self._prices.items()]
        return rows, self._site_discount, discount

    def _discounted(self, model: CatalogueModel, account_discount: str) -> tuple[Mapping[str, Price], Price]:
        """The prices of the model and its fallbacks at an account's discount, and their upper bound; remembered,
        as accounts share a handful of discounts (forgotten all at once past `DISCOUNTED_PRICES_KEPT`)."""
        key = (model.id, account_discount)
        found = self._discounted_prices.get(key)
        if found is None:
            discount = self._site_discount * Decimal(account_discount)
            prices = {model_id: price.scaled(discount) for model_id, price in self._model_prices(model).items()}
            found = prices, _upper_bound(prices.values())
            if len(self._discounted_prices) >= DISCOUNTED_PRICES_KEPT:
                self._discounted_prices.clear()
            self._discounted_prices[key] = found
        return found

    def _model_prices(self, model: CatalogueModel) -> dict[str, Price]:
        prices = {}
        for model_id in (model.id, *model.config.fallbacks):
            price = self._prices.get(model_id)
            if price is None:
                raise FailedPreconditionError(
                    f"{model_id} has no price configured, so it cannot be billed", reason="model_not_priced"
                )
            prices[model_id] = price
        return prices


def _upper_bound(prices: object) -> Price:
    values = list(prices)  # type: ignore[call-overload]
    return Price(*(max(getattr(p, field.name) for p in values) for field in dataclasses.fields(Price)))


def _account_cannot_pay() -> InsufficientQuotaError:
    """An unknown account or token (deleted since its key was checked), or a disabled account."""
    return InsufficientQuotaError("the account cannot pay for calls")


def _insufficient(cap: bool) -> InsufficientQuotaError:
    if cap:
        return InsufficientQuotaError("this API key's spend cap cannot pay for this request", param="max_tokens")
    return InsufficientQuotaError(
        "the balance cannot pay for this request: add credit or lower max_tokens", param="max_tokens"
    )
