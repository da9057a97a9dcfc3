"""What a relayed call used, known at every terminal path: success, upstream error, cut, client cancel.

Usage the upstream reported wins; when none arrived (a cut stream, a client that left), the meter
estimates from the prompt and the text actually relayed, and says so. Error text never counts.
"""

from __future__ import annotations

import dataclasses
import time

from tollgate.v1 import chat_pb2, relay_pb2

from server.domain.token_count import TextSize


@dataclasses.dataclass
class UsageMeter:
    """Watches one call: the usage reported, the output relayed, how it ended."""

    requested_model: str
    prompt_estimate: int
    stream: bool
    client_ip: str = ""
    served_model: str = ""
    channel: str = ""
    reported: chat_pb2.Usage | None = None
    output_chars: TextSize = dataclasses.field(default_factory=TextSize)
    """Size of the content, reasoning and tool arguments received so far (counted whole, not per chunk)."""
    status: str = "ok"
    """ok, or the error code the call ended with (cancelled when the client left)."""
    started: float = dataclasses.field(default_factory=time.monotonic)
    first_token_at: float | None = None
    ended: float | None = None

    @property
    def output_text(self) -> int:
        """Estimated tokens of the output received so far."""
        return self.output_chars.tokens()

    @property
    def estimated(self) -> bool:
        return self.reported is None or not self._plausible(self.reported)

    def _plausible(self, usage: chat_pb2.Usage) -> bool:
        """Reported usage is believed unless it denies a prompt or the text that was plainly relayed."""
        if usage.prompt_tokens <= 0 and self.prompt_estimate > 0:
            return False
        return not (self.output_text > 8 and usage.completion_tokens * 4 < self.output_text)

    def usage(self) -> chat_pb2.Usage:
        """The usage to account: reported, else estimated from the prompt and the relayed output."""
        if self.reported is not None and self._plausible(self.reported):
            return self.reported
        completion = self.output_text
        prompt = self.prompt_estimate if self.first_token_at is not None or completion else 0
        return chat_pb2.Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)

    def saw_chunk(self, chunk: relay_pb2.StreamChatCompletionResponse) -> None:
        if self.first_token_at is None:
            self.first_token_at = time.monotonic()
        if chunk.HasField("usage"):
            self.reported = chunk.usage
        for choice in chunk.choices:
            delta = choice.delta
            self.output_chars.add(delta.content, delta.reasoning_content)
            self.output_chars.add(*(call.function.arguments for call in delta.tool_calls))

    def saw_answer(self, answer: relay_pb2.CreateChatCompletionResponse) -> None:
        self.first_token_at = time.monotonic()
        if answer.HasField("usage"):
            self.reported = answer.usage
        for choice in answer.choices:
            self.output_chars.add(choice.message.content, choice.message.reasoning_content)

    def saw_embeddings(self, prompt_tokens: int) -> None:
        self.first_token_at = time.monotonic()
        self.reported = chat_pb2.Usage(prompt_tokens=prompt_tokens, total_tokens=prompt_tokens)

    def finish(self, status: str = "ok") -> None:
        self.status = status
        self.ended = time.monotonic()

    def latency_ms(self) -> int:
        return round(((self.ended or time.monotonic()) - self.started) * 1000)

    def time_to_first_token_ms(self) -> int | None:
        return None if self.first_token_at is None else round((self.first_token_at - self.started) * 1000)
