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
from typing import Any, TypeVar

from server.errors import InvalidArgumentError

ENV_PREFIX = "TOLLGATE_"


class ConfigError(InvalidArgumentError):
    """The configuration file or an environment variable is wrong."""


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


def default_models() -> dict[str, ModelConfig]:
    """The catalogue served when the configuration file has no `[models]` tables."""
    return {
        "deepseek-chat": ModelConfig(owned_by="deepseek", context_window=65_536, max_output_tokens=8_192),
        "deepseek-reasoner": ModelConfig(
            owned_by="deepseek", context_window=65_536, max_output_tokens=32_768, reasoning=True
        ),
        "claude-haiku-4-5": ModelConfig(owned_by="anthropic", context_window=200_000, max_output_tokens=64_000),
        "claude-sonnet-4-6": ModelConfig(
            owned_by="anthropic",
            context_window=200_000,
            max_output_tokens=64_000,
            vision=True,
            fallbacks=("claude-haiku-4-5",),
        ),
        "claude-opus-4-7": ModelConfig(
            owned_by="anthropic", context_window=200_000, max_output_tokens=32_000, vision=True
        ),
        "text-embedding-3-small": ModelConfig(kind="embedding", owned_by="openai", context_window=8_191),
    }


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
    grpc: GrpcConfig = dataclasses.field(default_factory=GrpcConfig)
    http: HttpConfig = dataclasses.field(default_factory=HttpConfig)
    models: Mapping[str, ModelConfig] = dataclasses.field(
        default_factory=default_models, metadata={"table_of": ModelConfig}
    )
    """The model catalogue: `[models."id"]` tables replace the built-in one (file only, no variables)."""


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
    return _build(Config, data, env, prefix="")


_T = TypeVar("_T")


def _build(cls: type[_T], data: Mapping[str, Any], env: Mapping[str, str], prefix: str) -> _T:
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"unknown config key(s): {', '.join(prefix + k for k in unknown)}")
    values: dict[str, Any] = {}
    for name, field in fields.items():
        key = prefix + name
        table_of = field.metadata.get("table_of")
        if table_of is not None:
            if name in data:
                values[name] = _build_tables(table_of, data[name], key)
            continue
        section_cls = field.default_factory
        if isinstance(section_cls, type) and dataclasses.is_dataclass(section_cls):
            section = data.get(name, {})
            if not isinstance(section, dict):
                raise ConfigError(f"config key {key} must be a table")
            values[name] = _build(section_cls, section, env, prefix=key + ".")
            continue
        env_name = ENV_PREFIX + key.replace(".", "_").upper()
        if env_name in env:
            values[name] = _parse_env(env_name, env[env_name], field)
        elif name in data:
            values[name] = _check_type(key, data[name], field)
    return cls(**values)


def _build_tables(cls: type[_T], tables: Any, key: str) -> dict[str, _T]:
    if not isinstance(tables, dict) or not all(isinstance(table, dict) for table in tables.values()):
        raise ConfigError(f'config key {key} must hold tables, like [{key}."name"]')
    return {name: _build(cls, table, {}, prefix=f"{key}.{name}.") for name, table in tables.items()}


def _field_kind(field: dataclasses.Field[Any]) -> type:
    default = field.default
    if default is dataclasses.MISSING:
        raise ConfigError(f"config field {field.name} needs a default")
    return type(default)


def _check_type(key: str, value: Any, field: dataclasses.Field[Any]) -> Any:
    kind = _field_kind(field)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is tuple:
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ConfigError(f"config key {key} must be a list of strings")
        return tuple(value)
    if type(value) is not kind:
        raise ConfigError(f"config key {key} must be a {kind.__name__}, not {type(value).__name__}")
    return value


def _parse_env(name: str, raw: str, field: dataclasses.Field[Any]) -> Any:
    kind = _field_kind(field)
    if kind is str:
        return raw
    if kind is tuple:
        return tuple(item.strip() for item in raw.split(",") if item.strip())
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f"{name} must be true or false")
    try:
        return kind(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a {kind.__name__}") from exc


def split_host_port(listen: str) -> tuple[str, int]:
    """Parses `host:port` or `[v6]:port`."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"listen address {listen!r} must be host:port")
    return host.strip("[]") or "127.0.0.1", int(port)
