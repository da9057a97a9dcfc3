"""Per-request behaviour of the fake upstream: the `x-fake-scenario` header and `[[scenario: …]]` markers."""

from __future__ import annotations

import dataclasses
import re

MARKER = re.compile(r"\[\[scenario:([^\]]*)\]\]")
HOSTILE_KINDS = ("mixed", "negative", "float", "absurd", "string")


class ScenarioError(ValueError):
    """A scenario setting the fake upstream does not understand; answered as a 400."""


@dataclasses.dataclass(frozen=True)
class Scenario:
    """How one request is answered. Defaults come from the server's `FakeConfig`."""

    first_byte_ms: float = 0.0
    """Wait before the first byte of the answer (before the status line unless keep-alives are on)."""
    chunk_interval_ms: float = 0.0
    """Wait between two generated pieces (words or tool-argument fragments)."""
    chunks: int = 8
    """Content pieces: words of the answer text, or fragments of the tool-call arguments."""
    reasoning: int = 3
    """Reasoning / thinking words, emitted only when the request asks for reasoning."""
    keepalive_ms: float = 0.0
    """While waiting for the first byte, send keep-alives this often (status 200 goes out at once)."""
    status: int | None = None
    """Answer this HTTP error status in the provider's error shape."""
    retry_after: str | None = None
    """`retry-after` header value sent with an error status."""
    fail_times: int | None = None
    """Apply the failure settings (status, hang, cut_after, error_after) only to the first N attempts;
    alone it means status=500."""
    cut_after: int | None = None
    """Streams: drop the connection after N pieces (no [DONE] / message_stop, incomplete chunked body)."""
    error_after: int | None = None
    """Streams: after N pieces send an in-band error event and end the body."""
    hang: bool = False
    """Never answer; wait until the client disconnects."""
    no_usage: bool = False
    """Never report usage."""
    hostile_usage: str | None = None
    """Report broken usage numbers: mixed | negative | float | absurd | string."""
    zero_input_in_start: bool = False
    """Anthropic streams: message_start reports input_tokens 0; the real value is only in message_delta."""
    cache_read: int | None = None
    """Prompt tokens read from the cache."""
    cache_write: int | None = None
    """Prompt tokens written to the cache (no DeepSeek field: counted as uncached input there)."""

    @property
    def has_failure(self) -> bool:
        return self.hang or self.status is not None or self.cut_after is not None or self.error_after is not None


_FLOATS = ("first_byte_ms", "chunk_interval_ms", "keepalive_ms")
_INTS = ("chunks", "reasoning", "status", "fail_times", "cut_after", "error_after", "cache_read", "cache_write")
_FLAGS = ("hang", "no_usage", "zero_input_in_start")


def _setting(name: str, value: str | None) -> tuple[str, object]:
    if name in _FLAGS and value is None:
        return name, True
    if name == "hostile_usage":
        kind = value or "mixed"
        if kind not in HOSTILE_KINDS:
            raise ScenarioError(f"hostile_usage must be one of {', '.join(HOSTILE_KINDS)}")
        return name, kind
    if value is None:
        raise ScenarioError(f"scenario setting {name!r} needs a value")
    if name == "retry_after":
        return name, value
    try:
        if name in _FLOATS:
            number: float = float(value)
        elif name in _INTS:
            number = int(value)
        else:
            raise ScenarioError(f"unknown scenario setting {name!r}")
    except ValueError:
        raise ScenarioError(f"scenario setting {name!r} needs a number, got {value!r}") from None
    if number < 0:
        raise ScenarioError(f"scenario setting {name!r} must not be negative")
    return name, number


def parse_settings(text: str) -> dict[str, object]:
    """`a=1, b, c=x` → {"a": 1, "b": True, "c": "x"} with numbers typed; raises ScenarioError."""
    settings: dict[str, object] = {}
    for item in text.split(","):
        name, sep, value = item.strip().partition("=")
        if name:
            key, parsed = _setting(name.strip(), value.strip() if sep else None)
            settings[key] = parsed
    return settings


def resolve(defaults: Scenario, header: str | None, text: str) -> Scenario:
    """The scenario of one request: defaults, then the header, then every marker in `text` (later wins)."""
    if header is None and "[[scenario:" not in text:
        return defaults
    settings = parse_settings(header) if header else {}
    for marker in MARKER.finditer(text):
        settings.update(parse_settings(marker.group(1)))
    scenario = dataclasses.replace(defaults, **settings)  # type: ignore[arg-type]
    if scenario.fail_times is not None and not scenario.has_failure:
        scenario = dataclasses.replace(scenario, status=500)  # fail_times alone means "fail with a 500"
    return scenario
