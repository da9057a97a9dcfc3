"""Per-model calibration of token estimates, learned from the calls whose upstream reported usage.

The estimate rule in token_count.py knows no model's tokenizer. Each call that comes back with
plausible reported usage teaches its served model two ratios, reported ÷ estimated, for the prompt
and for the output relayed (one per process, in memory, a moving average weighted towards recent
calls). A call that must be billed from an estimate (no usage, hostile usage, a cut stream, a client
that left) is scaled by its model's ratios. Before a model's first reported call, or for text unlike
what the model usually sees, the raw rule stands; the charge is still capped by the hold.
"""

from __future__ import annotations

import dataclasses
import math

from tollgate.v1 import chat_pb2

from server.domain.metering import UsageMeter

WEIGHT = 0.2
"""How much each new call moves a ratio."""
RATIO_BOUNDS = (0.25, 4.0)
"""A ratio outside these is not learned from: the estimate rule is not that wrong, the report is."""


@dataclasses.dataclass
class _Ratios:
    prompt: float | None = None
    output: float | None = None


def _moved(ratio: float | None, reported: int, estimated: int) -> float | None:
    if estimated <= 0 or reported <= 0:
        return ratio
    sample = reported / estimated
    if not RATIO_BOUNDS[0] <= sample <= RATIO_BOUNDS[1]:
        return ratio
    return sample if ratio is None else ratio + WEIGHT * (sample - ratio)


def _scaled(tokens: int, ratio: float | None) -> int:
    return tokens if ratio is None else math.ceil(tokens * ratio)


class Calibration:
    """Ratios of reported to estimated tokens, per served model."""

    def __init__(self) -> None:
        self._models: dict[str, _Ratios] = {}

    def usage(self, meter: UsageMeter) -> chat_pb2.Usage:
        """The usage to bill: the reported one (learning from it), else the estimate scaled by the model's ratios."""
        model = meter.served_model or meter.requested_model
        usage = meter.usage()
        ratios = self._models.setdefault(model, _Ratios())
        if not meter.estimated:
            ratios.prompt = _moved(ratios.prompt, usage.prompt_tokens, meter.prompt_estimate)
            ratios.output = _moved(ratios.output, usage.completion_tokens, meter.output_text)
            return usage
        prompt = _scaled(usage.prompt_tokens, ratios.prompt)
        completion = _scaled(usage.completion_tokens, ratios.output)
        return chat_pb2.Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)

    def ratios(self, model: str) -> tuple[float | None, float | None]:
        """(prompt, output) ratios learned for `model`; None where nothing was learned yet."""
        ratios = self._models.get(model, _Ratios())
        return ratios.prompt, ratios.output
