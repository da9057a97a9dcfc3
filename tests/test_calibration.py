"""Calibration: estimates scaled by what a model's reported usage taught, and nothing learned from bad reports."""

from __future__ import annotations

from tollgate.v1 import chat_pb2, relay_pb2

from server.domain.calibration import Calibration
from server.domain.metering import UsageMeter


def _meter(prompt_estimate: int, output: str, reported: tuple[int, int] | None, model: str = "m") -> UsageMeter:
    meter = UsageMeter(model, prompt_estimate, stream=True, served_model=model)
    chunk = relay_pb2.StreamChatCompletionResponse()
    chunk.choices.add().delta.content = output
    meter.saw_chunk(chunk)
    if reported is not None:
        meter.reported = chat_pb2.Usage(prompt_tokens=reported[0], completion_tokens=reported[1])
    return meter


def test_an_estimate_is_the_raw_rule_until_the_model_reported_usage() -> None:
    usage = Calibration().usage(_meter(100, "x" * 400, None))
    assert (usage.prompt_tokens, usage.completion_tokens) == (100, 100)


def test_reported_usage_is_billed_as_is_and_teaches_the_model_its_ratios() -> None:
    calibration = Calibration()
    reported = calibration.usage(_meter(100, "x" * 400, (90, 50)))
    assert (reported.prompt_tokens, reported.completion_tokens) == (90, 50)
    assert calibration.ratios("m") == (0.9, 0.5)
    estimated = calibration.usage(_meter(200, "x" * 800, None))
    assert (estimated.prompt_tokens, estimated.completion_tokens, estimated.total_tokens) == (180, 100, 280)
    assert calibration.ratios("other") == (None, None)
    other = calibration.usage(_meter(200, "x" * 800, None, model="other"))
    assert (other.prompt_tokens, other.completion_tokens) == (200, 200)


def test_ratios_follow_recent_calls() -> None:
    calibration = Calibration()
    calibration.usage(_meter(100, "x" * 400, (100, 100)))
    calibration.usage(_meter(100, "x" * 400, (50, 50)))
    prompt, output = calibration.ratios("m")
    assert prompt is not None and output is not None
    assert 0.5 < prompt < 1.0 and prompt == output


def test_implausible_or_absurd_reports_teach_nothing() -> None:
    calibration = Calibration()
    calibration.usage(_meter(100, "x" * 400, (0, 0)))  # denies the prompt: estimated, not learned
    calibration.usage(_meter(100, "x" * 400, (100_000, 100)))  # a ratio of 1000: outside the bounds
    assert calibration.ratios("m") == (None, 1.0)
