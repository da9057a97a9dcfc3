"""The model catalogue: which models exist and which a token may see and call."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from server.config import ModelConfig
from server.domain.records import ApiToken
from server.errors import NotFoundError, PermissionDeniedError


@dataclasses.dataclass(frozen=True)
class CatalogueModel:
    """A model under the id users call it by."""

    id: str
    config: ModelConfig


class Catalogue:
    """The configured models, in configuration order."""

    def __init__(self, models: Mapping[str, ModelConfig]) -> None:
        self._models = {model_id: CatalogueModel(model_id, config) for model_id, config in models.items()}

    def ids(self) -> list[str]:
        return list(self._models)

    def context_windows(self) -> dict[str, int]:
        return {model_id: model.config.context_window for model_id, model in self._models.items()}

    def visible_to(self, token: ApiToken | None) -> list[CatalogueModel]:
        """Every model, or only the token's allow-list when it has one."""
        allowed = token.allowed_models if token else ()
        return [model for model in self._models.values() if not allowed or model.id in allowed]

    def get(self, model_id: str, token: ApiToken | None) -> CatalogueModel:
        """The model; raises NotFoundError (model_not_found) or PermissionDeniedError (model_not_allowed)."""
        model = self._models.get(model_id)
        if model is None:
            raise NotFoundError(f"the model {model_id!r} does not exist", reason="model_not_found", param="model")
        if token is not None and token.allowed_models and model_id not in token.allowed_models:
            raise PermissionDeniedError(
                f"this API key may not use the model {model_id!r}", reason="model_not_allowed", param="model"
            )
        return model
