"""Configuration: frozen dataclasses read once at start-up from a TOML file and TOLLGATE_* variables.

Every setting has a file key and an environment variable: `[grpc] listen` is `TOLLGATE_GRPC_LISTEN`,
top-level `database_url` is `TOLLGATE_DATABASE_URL`. The file is `--config FILE` or `TOLLGATE_CONFIG`.
The environment wins over the file; the file wins over the defaults.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from server.config_parse import ENV_PREFIX, build
from server.config_parse import ConfigError as ConfigError


@dataclasses.dataclass(frozen=True)
class GrpcConfig:
    """The gRPC server."""

    listen: str = "127.0.0.1:50051"
    """host:port the gRPC server binds; port 0 picks a free one."""
    shutdown_grace_seconds: float = 10.0
    """On SIGTERM, how long in-flight calls may run before they are cancelled."""


@dataclasses.dataclass(frozen=True)
class HttpConfig:
    """The REST/SSE gateway."""

    listen: str = "127.0.0.1:8080"
    """host:port the gateway binds; port 0 picks a free one."""
    grpc_target: str = ""
    """gRPC server the gateway calls; empty means the one started in the same process."""
    request_timeout_seconds: float = 60.0
    """Deadline of a management call when the client sends no Grpc-Timeout header."""
    max_body_bytes: int = 8 * 1024 * 1024
    """Largest request body; a larger one is refused with 413 before it is read."""
    head_timeout_seconds: float = 10.0
    """Time a client has to send a request's headers; then the connection is closed."""
    body_timeout_seconds: float = 30.0
    """Time a client has to send a request's body; then 408."""


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """One model users can call, under the id users know it by (a `[models."id"]` table)."""

    kind: str = "chat"
    """chat | embedding."""
    owned_by: str = ""
    """Who makes the model, as OpenAI's model list shows it."""
    context_window: int = 0
    """Prompt and output tokens together."""
    max_output_tokens: int = 0
    """The largest answer; also the default output limit."""
    reasoning: bool = False
    """Reasons before answering: longer timeouts, reasoning_content."""
    vision: bool = False
    """Accepts image parts."""
    fallbacks: tuple[str, ...] = ()
    """Models tried in order when this one fails."""
    input_per_mtok: str = ""
    """Upstream price of uncached input, USD per million tokens as a decimal string; empty = unpriced."""
    cached_input_per_mtok: str = ""
    """Upstream price of input read from the provider's cache."""
    cache_write_per_mtok: str = ""
    """Upstream price of input written to the provider's cache."""
    output_per_mtok: str = ""
    """Upstream price of output, reasoning included."""


CHANNEL_TYPES = ("openai", "anthropic", "simulated")


@dataclasses.dataclass(frozen=True)
class ChannelConfig:
    """An upstream that serves some models (a `[[channels]]` table)."""

    name: str = ""
    """Shown in logs and usage rows."""
    type: str = "openai"
    """openai (any OpenAI-compatible API: OpenAI, DeepSeek, …) | anthropic (Messages API) | simulated."""
    base_url: str = ""
    """The upstream's base URL, e.g. https://api.deepseek.com (no /v1 for anthropic)."""
    api_key_env: str = ""
    """The environment variable that holds the key; a channel without a key is not used."""
    models: tuple[str, ...] = ()
    """Model ids (as users call them) this channel serves."""
    model_map: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Upstream rename: user-facing id → the id the upstream uses today."""
    priority: int = 0
    """Higher tiers are tried first; lower tiers only when every channel above has failed."""
    weight: int = 1
    """Share of traffic within its tier."""
    standby: bool = False
    """Serves a model only when no other usable channel serves it (the built-in simulated channel)."""
    api_key: str = dataclasses.field(default="", repr=False, metadata={"from_env_only": True})
    """Filled from api_key_env at start-up; never written in the file."""


@dataclasses.dataclass(frozen=True)
class DatabaseConfig:
    """PostgreSQL connections (SQLite has one connection and needs none of these)."""

    pool_size: int = 10
    """Connections per process."""
    pool_timeout_seconds: float = 5.0
    """Wait for a free connection, or to open one, before answering 503."""
    lock_timeout_seconds: float = 2.0
    """Wait for a row another transaction holds before answering 503."""
    statement_timeout_seconds: float = 5.0
    """Longest statement before it is cancelled and the call answers 503."""


@dataclasses.dataclass(frozen=True)
class BillingConfig:
    """Charging."""

    site_discount: str = "1"
    """Multiplier on every upstream price, as a decimal string (e.g. "0.8" sells at 80 %)."""
    reaper_interval_seconds: float = 30.0
    """How often holds left by a dead process are looked for."""
    hold_grace_seconds: float = 300.0
    """A hold outlives the longest call (relay.stream_max_seconds) by this much before the reaper may settle it."""


@dataclasses.dataclass(frozen=True)
class RelayConfig:
    """Timeouts, retries and circuit breaking of upstream calls."""

    connect_timeout_seconds: float = 5.0
    """Time to open a connection to an upstream."""
    first_byte_timeout_seconds: float = 60.0
    """Time to the first byte of an answer (non-reasoning models)."""
    reasoning_first_byte_timeout_seconds: float = 180.0
    """The same for reasoning models."""
    idle_timeout_seconds: float = 60.0
    """Longest silence between two chunks of a stream (non-reasoning models)."""
    reasoning_idle_timeout_seconds: float = 180.0
    """The same for reasoning models."""
    total_timeout_seconds: float = 60.0
    """A whole non-streamed answer (non-reasoning models)."""
    reasoning_total_timeout_seconds: float = 180.0
    """The same for reasoning models."""
    stream_max_seconds: float = 900.0
    """Absolute cap on one stream."""
    max_retries: int = 2
    """Retries of one request, only before its first byte reached the client."""
    retry_budget_ratio: float = 0.2
    """Retries allowed per first attempt, over the last minute, per process."""
    retry_after_cap_seconds: float = 10.0
    """An upstream Retry-After longer than this is not waited for: the next channel is tried."""
    breaker_failures: int = 5
    """Consecutive failures that open a channel's circuit breaker."""
    breaker_open_seconds: float = 30.0
    """How long an open breaker refuses calls before one half-open probe."""
    disconnect_drain_seconds: float = 30.0
    """After a client left a stream, how long the upstream is read on for its final usage (0 = never)."""
    max_disconnect_drains: int = 100
    """Drains one process runs at once; past it, a left stream is settled from the tokens received."""


@dataclasses.dataclass(frozen=True)
class LimitsConfig:
    """Admission: per-token and per-account limits, per-channel capacity, and the process's own cap."""

    token_concurrency: int = 100
    """Concurrent requests per token when the token sets none."""
    lease_seconds: float = 15.0
    """A concurrency slot's lease; renewed while its request runs, so a dead process frees it this fast."""
    account_requests_per_minute: int = 0
    """Requests per minute per account, across its tokens; 0 = no limit."""
    account_tokens_per_minute: int = 0
    """Tokens per minute per account (prompt estimate and max_tokens, corrected at settlement); 0 = none."""
    max_open_requests: int = 10_000
    """Relayed requests one process keeps open; past it, new ones get a fast 503 overloaded."""
    channel_max_concurrency: int = 512
    """The most concurrent calls one channel gets; the allowed number adapts below it."""
    channel_queue_seconds: float = 2.0
    """How long a request waits for a busy channel before the next channel, or 503."""
    channel_queue_size: int = 1024
    """Requests that may wait for one channel; past it, the channel counts as busy at once."""
    redis_prefix: str = "tollgate:"
    """Prefix of every Redis key."""
    redis_timeout_seconds: float = 0.2
    """A Redis answer slower than this counts as an outage: this process decides alone for a while."""
    replicas: int = 1
    """Processes sharing the limits; during a Redis outage each admits 1/replicas of every limit."""


@dataclasses.dataclass(frozen=True)
class AuthCacheConfig:
    """The per-process cache of API-key look-ups, emptied by revocations from every replica."""

    ttl_seconds: float = 30.0
    """How long a look-up is reused while revocations arrive over Redis (a revoked key is refused at once)."""
    backstop_seconds: float = 2.0
    """How long it is reused when they may not arrive (no Redis, or Redis down): the revocation delay."""
    max_entries: int = 100_000
    """Look-ups kept per process; the least recently used go first."""


@dataclasses.dataclass(frozen=True)
class MetricsConfig:
    """`GET /metrics` on the REST port: open to loopback, and to others with this bearer token."""

    token: str = dataclasses.field(default="", repr=False)
    """The scrape token for non-loopback clients; empty refuses them."""


def default_models() -> dict[str, ModelConfig]:
    """The catalogue served when the configuration file has no `[models]` tables (prices in USD per 1M tokens)."""
    anthropic = {"owned_by": "anthropic", "context_window": 200_000}
    return {
        "deepseek-chat": ModelConfig(
            owned_by="deepseek",
            context_window=65_536,
            max_output_tokens=8_192,
            input_per_mtok="0.27",
            cached_input_per_mtok="0.07",
            output_per_mtok="1.10",
        ),
        "deepseek-reasoner": ModelConfig(
            owned_by="deepseek",
            context_window=65_536,
            max_output_tokens=32_768,
            reasoning=True,
            input_per_mtok="0.55",
            cached_input_per_mtok="0.14",
            output_per_mtok="2.19",
        ),
        "claude-haiku-4-5": ModelConfig(
            **anthropic,  # type: ignore[arg-type]
            max_output_tokens=64_000,
            input_per_mtok="1",
            cached_input_per_mtok="0.10",
            cache_write_per_mtok="1.25",
            output_per_mtok="5",
        ),
        "claude-sonnet-4-6": ModelConfig(
            **anthropic,  # type: ignore[arg-type]
            max_output_tokens=64_000,
            vision=True,
            fallbacks=("claude-haiku-4-5",),
            input_per_mtok="3",
            cached_input_per_mtok="0.30",
            cache_write_per_mtok="3.75",
            output_per_mtok="15",
        ),
        "claude-opus-4-7": ModelConfig(
            **anthropic,  # type: ignore[arg-type]
            max_output_tokens=32_000,
            vision=True,
            input_per_mtok="5",
            cached_input_per_mtok="0.50",
            cache_write_per_mtok="6.25",
            output_per_mtok="25",
        ),
        "text-embedding-3-small": ModelConfig(
            kind="embedding", owned_by="openai", context_window=8_191, input_per_mtok="0.02"
        ),
    }


def default_channels() -> tuple[ChannelConfig, ...]:
    """Real providers (used when their key is in the environment) and the simulated standby."""
    return (
        ChannelConfig(
            name="deepseek",
            base_url="https://api.deepseek.com",
            api_key_env="DEEPSEEK_API_KEY",
            models=("deepseek-chat", "deepseek-reasoner"),
        ),
        ChannelConfig(
            name="anthropic",
            type="anthropic",
            base_url="https://api.anthropic.com",
            api_key_env="ANTHROPIC_API_KEY",
            models=("claude-haiku-4-5", "claude-sonnet-4-6", "claude-opus-4-7"),
        ),
        ChannelConfig(
            name="openai",
            base_url="https://api.openai.com",
            api_key_env="OPENAI_API_KEY",
            models=("text-embedding-3-small",),
        ),
        ChannelConfig(name="simulated", type="simulated", models=tuple(default_models()), standby=True),
    )


@dataclasses.dataclass(frozen=True)
class Config:
    """All of Tollgate's settings."""

    database_url: str = "sqlite:///data/tollgate.db"
    """`sqlite:///relative/path`, `sqlite:////absolute/path` or `postgresql://…`."""
    redis_url: str = ""
    """Redis for shared limits and revocation; empty keeps them in this process."""
    admin_key: str = ""
    """The operator key; empty means a generated one whose hash is kept in the database."""
    log_level: str = "info"
    """debug | info | warning | error."""
    log_format: str = "text"
    """text | json (one object per line, with the request id and metadata fields)."""
    database: DatabaseConfig = dataclasses.field(default_factory=DatabaseConfig)
    grpc: GrpcConfig = dataclasses.field(default_factory=GrpcConfig)
    http: HttpConfig = dataclasses.field(default_factory=HttpConfig)
    relay: RelayConfig = dataclasses.field(default_factory=RelayConfig)
    billing: BillingConfig = dataclasses.field(default_factory=BillingConfig)
    limits: LimitsConfig = dataclasses.field(default_factory=LimitsConfig)
    auth_cache: AuthCacheConfig = dataclasses.field(default_factory=AuthCacheConfig)
    metrics: MetricsConfig = dataclasses.field(default_factory=MetricsConfig)
    models: Mapping[str, ModelConfig] = dataclasses.field(
        default_factory=default_models, metadata={"table_of": ModelConfig}
    )
    """The model catalogue: `[models."id"]` tables replace the built-in one (file only, no variables)."""
    channels: tuple[ChannelConfig, ...] = dataclasses.field(
        default_factory=default_channels, metadata={"list_of": ChannelConfig}
    )
    """The upstreams: `[[channels]]` tables replace the built-in list (file only, no variables)."""


def load_config(path: str | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Reads the file (if any) and applies environment overrides; raises ConfigError on any mistake."""
    env = os.environ if environ is None else environ
    path = path or env.get(ENV_PREFIX + "CONFIG") or None
    data: dict[str, Any] = {}
    if path:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    config = build(Config, data, env, prefix="")
    return dataclasses.replace(config, channels=tuple(_with_key(channel, env) for channel in config.channels))


def _with_key(channel: ChannelConfig, env: Mapping[str, str]) -> ChannelConfig:
    """Reads the channel's API key from the variable it names (keys never live in the file)."""
    if channel.type not in CHANNEL_TYPES:
        raise ConfigError(f"channel {channel.name!r}: type must be one of {', '.join(CHANNEL_TYPES)}")
    if not channel.api_key_env:
        return channel
    return dataclasses.replace(channel, api_key=env.get(channel.api_key_env, ""))


def split_host_port(listen: str) -> tuple[str, int]:
    """Parses `host:port` or `[v6]:port`."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"listen address {listen!r} must be host:port")
    return host.strip("[]") or "127.0.0.1", int(port)
