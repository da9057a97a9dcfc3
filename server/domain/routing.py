"""Routing: which channels serve a model, in which order, with their health."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence

from server.config import ChannelConfig, ConfigError
from server.domain.breaker import CircuitBreaker
from server.domain.capacity import ChannelCapacity
from server.domain.catalogue import Catalogue
from server.providers.base import Provider


@dataclasses.dataclass
class Channel:
    """An upstream channel with its provider and its health."""

    config: ChannelConfig
    provider: Provider
    breaker: CircuitBreaker
    capacity: ChannelCapacity

    @property
    def name(self) -> str:
        return self.config.name

    def upstream_model(self, model_id: str) -> str:
        """The id this upstream uses today for the model users call `model_id`."""
        return self.config.model_map.get(model_id, model_id)


class Router:
    """Orders a model's channels: higher priority tiers first, weighted random order within a tier."""

    def __init__(self, channels: Sequence[Channel], catalogue: Catalogue, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()
        known = set(catalogue.ids())
        names = [channel.name for channel in channels]
        if len(set(names)) != len(names):
            raise ConfigError("channel names must be unique")
        self._by_model: dict[str, list[Channel]] = {}
        for channel in channels:
            unknown = sorted(set(channel.config.models) - known)
            if unknown:
                raise ConfigError(f"channel {channel.name!r} serves unknown model(s): {', '.join(unknown)}")
            for model in channel.config.models:
                self._by_model.setdefault(model, []).append(channel)
        for model, serving in self._by_model.items():
            regular = [channel for channel in serving if not channel.config.standby]
            self._by_model[model] = regular or serving

    def serves(self, model_id: str) -> bool:
        return model_id in self._by_model

    def channel_names(self, model_id: str) -> list[str]:
        return [channel.name for channel in self._by_model.get(model_id, [])]

    def order(self, model_id: str) -> list[Channel]:
        """The channels to try for one request, best first."""
        serving = self._by_model.get(model_id, [])
        ordered: list[Channel] = []
        for priority in sorted({c.config.priority for c in serving}, reverse=True):
            tier = [channel for channel in serving if channel.config.priority == priority]
            ordered += self._weighted_shuffle(tier)
        return ordered

    def _weighted_shuffle(self, tier: list[Channel]) -> list[Channel]:
        # Efraimidis-Spirakis: sort by u^(1/w), a weighted random permutation in one pass.
        keyed = [(self._rng.random() ** (1.0 / max(channel.config.weight, 1)), channel) for channel in tier]
        return [channel for _, channel in sorted(keyed, key=lambda pair: pair[0], reverse=True)]
