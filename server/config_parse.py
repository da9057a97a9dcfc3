"""The generic part of configuration: dataclasses filled from TOML data and TOLLGATE_* variables."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

from server.errors import InvalidArgumentError

ENV_PREFIX = "TOLLGATE_"


class ConfigError(InvalidArgumentError):
    """The configuration file or an environment variable is wrong."""


_T = TypeVar("_T")


def build(cls: type[_T], data: Mapping[str, Any], env: Mapping[str, str], prefix: str) -> _T:
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"unknown config key(s): {', '.join(prefix + k for k in unknown)}")
    values: dict[str, Any] = {}
    for name, field in fields.items():
        key = prefix + name
        if field.metadata.get("from_env_only"):
            if name in data:
                raise ConfigError(f"config key {key} cannot be set in the file")
            continue
        table_of = field.metadata.get("table_of")
        if table_of is not None:
            if name in data:
                values[name] = _build_tables(table_of, data[name], key)
            continue
        list_of = field.metadata.get("list_of")
        if list_of is not None:
            if name in data:
                values[name] = _build_list(list_of, data[name], key)
            continue
        section_cls = field.default_factory
        if isinstance(section_cls, type) and dataclasses.is_dataclass(section_cls):
            section = data.get(name, {})
            if not isinstance(section, dict):
                raise ConfigError(f"config key {key} must be a table")
            values[name] = build(section_cls, section, env, prefix=key + ".")
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
    return {name: build(cls, table, {}, prefix=f"{key}.{name}.") for name, table in tables.items()}


def _build_list(cls: type[_T], tables: Any, key: str) -> tuple[_T, ...]:
    if not isinstance(tables, list) or not all(isinstance(table, dict) for table in tables):
        raise ConfigError(f"config key {key} must hold tables, like [[{key}]]")
    return tuple(build(cls, table, {}, prefix=f"{key}[{index}].") for index, table in enumerate(tables))


def _field_kind(field: dataclasses.Field[Any]) -> type:
    if field.default is not dataclasses.MISSING:
        return type(field.default)
    if field.default_factory is not dataclasses.MISSING:
        return type(field.default_factory())
    raise ConfigError(f"config field {field.name} needs a default")


def _check_type(key: str, value: Any, field: dataclasses.Field[Any]) -> Any:
    kind = _field_kind(field)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is tuple:
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ConfigError(f"config key {key} must be a list of strings")
        return tuple(value)
    if kind is dict:
        if not isinstance(value, dict) or not all(isinstance(item, str) for item in value.values()):
            raise ConfigError(f"config key {key} must be a table of strings")
        return dict(value)
    if type(value) is not kind:
        raise ConfigError(f"config key {key} must be a {kind.__name__}, not {type(value).__name__}")
    return value


def _parse_env(name: str, raw: str, field: dataclasses.Field[Any]) -> Any:
    kind = _field_kind(field)
    if kind is str:
        return raw
    if kind is tuple:
        return tuple(item.strip() for item in raw.split(",") if item.strip())
    if kind is dict:
        raise ConfigError(f"{name} cannot be set from the environment")
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
