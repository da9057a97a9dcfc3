"""The composition root: builds the concrete adapters from the configuration and starts the servers."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from datetime import timedelta

import grpc

from gateway.app import create_gateway_app
from gateway.body import BodyLimits
from gateway.http_server import HttpServer, start_http_server
from gateway.metrics import MetricsEndpoint
from server.access import ACCESS
from server.auth import Authenticator, ChainAuthenticator, OperatorKeyAuthenticator, operator_key_sha256
from server.config import Config, ConfigError, DatabaseConfig, split_host_port
from server.domain.accounts import Accounts
from server.domain.admission import Admission
from server.domain.billing import Billing
from server.domain.breaker import CircuitBreaker
from server.domain.capacity import ChannelCapacity
from server.domain.catalogue import Catalogue
from server.domain.login_throttle import LoginThrottle
from server.domain.money import parse_multiplier
from server.domain.passwords import Passwords
from server.domain.relay import Relay
from server.domain.routing import Channel, Router
from server.domain.sessions import Sessions
from server.domain.token_cache import TokenCache
from server.domain.tokens import Tokens
from server.grpc_server import GrpcServer, start_grpc_server
from server.interceptors import EdgeInterceptor
from server.limits.base import Limiter
from server.limits.fallback import FallbackLimiter
from server.limits.memory import MemoryLimiter
from server.limits.redis import RedisLimiter
from server.local_channel import LocalChannel
from server.metrics import Metrics
from server.providers.anthropic import AnthropicProvider
from server.providers.base import Provider
from server.providers.http_client import HttpClient
from server.providers.openai import OpenAIProvider
from server.providers.simulated import SimulatedProvider
from server.revocations import RedisRevocationBus
from server.services import Servicers
from server.services.accounts import AccountServicer
from server.services.billing import BillingServicer
from server.services.relay import RelayServicer
from server.services.tokens import TokenServicer
from server.storage.base import Store
from server.storage.postgres import PostgresStore
from server.storage.sqlite import SqliteStore

log = logging.getLogger(__name__)


async def open_store(database_url: str, options: DatabaseConfig | None = None) -> Store:
    """The store the URL names, migrated to the newest schema."""
    store: Store
    if database_url.startswith("sqlite:"):
        store = await SqliteStore.open(database_url)
    elif database_url.startswith(("postgresql:", "postgres:")):
        store = await PostgresStore.open(database_url, options or DatabaseConfig())
    else:
        raise ConfigError("database_url must be sqlite:///path or postgresql://…")
    try:
        version = await store.migrate()
    except BaseException:
        await store.close()
        raise
    log.info("database schema at version %d", version)
    return store


@dataclasses.dataclass(frozen=True)
class Domain:
    """The domain services, built once per process over one store."""

    accounts: Accounts
    sessions: Sessions
    tokens: Tokens
    catalogue: Catalogue
    relay: Relay
    billing: Billing
    admission: Admission
    token_cache: TokenCache
    revocations: RedisRevocationBus | None
    channels: tuple[Channel, ...]
    limiter: Limiter
    metrics: Metrics

    @property
    def open_requests(self) -> int:
        return self.admission.open_requests

    @property
    def open_holds(self) -> int:
        return self.billing.open_holds

    @property
    def reaped_holds(self) -> int:
        return self.billing.reaped_holds

    @property
    def limiter_degraded(self) -> bool:
        return isinstance(self.limiter, FallbackLimiter) and self.limiter.degraded

    @property
    def limiter_fallback_decisions(self) -> int:
        return self.limiter.fallback_decisions if isinstance(self.limiter, FallbackLimiter) else 0

    @property
    def revocations_listening(self) -> bool:
        return self.token_cache.bus_healthy

    def servicers(self) -> Servicers:
        return Servicers(
            relay=RelayServicer(self.catalogue, self.relay),
            tokens=TokenServicer(self.tokens),
            billing=BillingServicer(self.accounts, self.tokens, self.billing, self.catalogue.context_windows()),
            accounts=AccountServicer(self.accounts, self.sessions),
        )

    def authenticator(self, operator_key_sha256: str) -> Authenticator:
        """API keys, console sessions, then the operator key."""
        return ChainAuthenticator([self.tokens, self.sessions, OperatorKeyAuthenticator(operator_key_sha256)])


def build_domain(
    store: Store,
    config: Config,
    operator_key_sha256: str,
    http_client: HttpClient,
    passwords: Passwords | None = None,
) -> Domain:
    passwords = passwords or Passwords()
    catalogue = Catalogue(config.models)
    channels = build_channels(config, http_client)
    router = Router(channels, catalogue)
    metrics = Metrics()
    billing = Billing(
        store.ledger,
        catalogue,
        parse_multiplier(config.billing.site_discount, param="billing.site_discount"),
        timedelta(seconds=config.relay.stream_max_seconds + config.billing.hold_grace_seconds),
        on_settled=metrics.call_settled,
    )
    limiter = build_limiter(config)
    admission = Admission(limiter, config.limits)
    revocations = build_revocations(config)
    cache = TokenCache(
        ttl=config.auth_cache.ttl_seconds,
        backstop_ttl=config.auth_cache.backstop_seconds,
        max_entries=config.auth_cache.max_entries,
        publisher=revocations,
    )
    domain = Domain(
        accounts=Accounts(store.accounts, passwords, cache),
        sessions=Sessions(store.accounts, store.sessions, passwords, LoginThrottle(limiter), operator_key_sha256),
        tokens=Tokens(store.tokens, catalogue.ids(), cache),
        catalogue=catalogue,
        relay=Relay(catalogue, router, config.relay, billing, admission),
        billing=billing,
        admission=admission,
        token_cache=cache,
        revocations=revocations,
        channels=tuple(channels),
        limiter=limiter,
        metrics=metrics,
    )
    domain.metrics.watch(domain.channels, domain)
    return domain


def build_revocations(config: Config) -> RedisRevocationBus | None:
    """The Redis channel on which replicas tell each other of revoked tokens and accounts; None without Redis."""
    if not config.redis_url:
        return None
    return RedisRevocationBus.from_url(config.redis_url, channel=f"{config.limits.redis_prefix}revocations")


def build_limiter(config: Config) -> Limiter:
    """Redis when configured (falling back to a per-process share when it is down), else process memory."""
    if not config.redis_url:
        return MemoryLimiter()
    limits = config.limits
    redis = RedisLimiter.from_url(config.redis_url, timeout=limits.redis_timeout_seconds, prefix=limits.redis_prefix)
    return FallbackLimiter(redis, replicas=limits.replicas, timeout=limits.redis_timeout_seconds)


def build_channels(config: Config, http_client: HttpClient) -> list[Channel]:
    """A Channel per configured upstream that can be used; one without its key is left out, and said so."""
    channels = []
    for channel in config.channels:
        provider: Provider
        if channel.type == "simulated":
            provider = SimulatedProvider()
        elif not channel.api_key:
            log.info("channel %s is not used: no key in $%s", channel.name, channel.api_key_env or "(none named)")
            continue
        elif channel.type == "anthropic":
            provider = AnthropicProvider(channel, http_client)
        else:
            provider = OpenAIProvider(channel, http_client)
        breaker = CircuitBreaker(config.relay.breaker_failures, config.relay.breaker_open_seconds)
        limits = config.limits
        capacity = ChannelCapacity(
            channel.name,
            limits.channel_max_concurrency,
            queue_seconds=limits.channel_queue_seconds,
            queue_size=limits.channel_queue_size,
        )
        channels.append(Channel(channel, provider, breaker, capacity))
    return channels


@dataclasses.dataclass
class Tollgate:
    """A running Tollgate: the gRPC server, the gateway in front of it, and what they share."""

    store: Store
    upstream_client: HttpClient
    grpc_server: GrpcServer
    http_server: HttpServer
    channel: grpc.aio.Channel
    generated_operator_key: str | None
    reaper: asyncio.Task[None]
    domain: Domain
    revocation_listener: asyncio.Task[None] | None

    async def stop(self, grace: float) -> None:
        """Graceful shutdown: stop accepting, drain in-flight calls within `grace`, close in reverse order."""
        await asyncio.gather(self.http_server.stop(grace), self.grpc_server.stop(grace), self.channel.close(grace))
        await self.domain.relay.drains.stop(grace)  # streams whose client left: final usage, or cut and estimated
        await self.domain.billing.drain(timeout=max(grace, 5.0))  # settlements of cancelled calls finish first
        await self.domain.admission.close()
        background = [self.reaper, self.revocation_listener] if self.revocation_listener else [self.reaper]
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        if self.domain.revocations is not None:
            await self.domain.revocations.close()
        await self.upstream_client.close()
        await self.store.close()


async def start(config: Config) -> Tollgate:
    """Opens storage, starts the gRPC server and the gateway; returns with both accepting connections."""
    store = await open_store(config.database_url, config.database)
    upstream_client = HttpClient()
    try:
        key_sha256, generated_key = await operator_key_sha256(store, config.admin_key)
        domain = build_domain(store, config, key_sha256, upstream_client)
        edge = EdgeInterceptor(ACCESS, domain.authenticator(key_sha256), domain.metrics.rpc_finished)
        servicers = domain.servicers()
        grpc_server = await start_grpc_server(config.grpc.listen, servicers, edge)
    except BaseException:
        await upstream_client.close()
        await store.close()
        raise
    channel = LocalChannel.serving(servicers, edge)  # the same servicers and edge, without the loopback socket
    http_host, http_port = split_host_port(config.http.listen)
    try:
        body_limits = BodyLimits(config.http.max_body_bytes, config.http.body_timeout_seconds)
        app = create_gateway_app(
            channel,
            request_timeout=config.http.request_timeout_seconds,
            body_limits=body_limits,
            metrics=MetricsEndpoint(domain.metrics.render, config.metrics.token),
        )
        http = await start_http_server(
            app, http_host, http_port, log_level=config.log_level, head_timeout=config.http.head_timeout_seconds
        )
    except BaseException:
        await channel.close()
        await grpc_server.stop(0)
        await domain.admission.close()
        await upstream_client.close()
        await store.close()
        raise
    reaper = asyncio.create_task(run_reaper(domain.billing, config.billing.reaper_interval_seconds), name="reaper")
    listener = None
    if domain.revocations is not None:
        cache = domain.token_cache
        listener = asyncio.create_task(domain.revocations.listen(cache.forget, cache.follow_bus), name="revocations")
    return Tollgate(store, upstream_client, grpc_server, http, channel, generated_key, reaper, domain, listener)


async def run_reaper(billing: Billing, interval: float) -> None:
    """Settles, now and then, the holds a dead process left open; runs until cancelled."""
    while True:
        try:
            reaped = await billing.reap()
            if reaped:
                log.info("reaper settled %d abandoned hold(s)", reaped)
        except Exception:
            log.exception("the reaper failed; it will try again")
        await asyncio.sleep(interval)
