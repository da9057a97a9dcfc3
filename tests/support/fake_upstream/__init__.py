"""A fake LLM upstream over real HTTP: OpenAI / DeepSeek chat, Anthropic messages, OpenAI embeddings.

Start it with `async with running_fake_upstream(FakeConfig(key=...)) as upstream:` and point a channel's
base_url at `upstream.base_url` (the fake serves `/v1/chat/completions`, `/v1/messages`, `/v1/embeddings`), or
run `python -m tests.support.fake_upstream --port 0 --key KEY` as a process.

Answers (deterministic):
- Text: the words of "Echo: <first 40 chars of the echoed message>" repeated until `chunks` words (default 8);
  the first word is "Echo(images=N):" when the request has N image parts. The echoed message is the last
  user message (OpenAI: the last user or tool message). Streams send one word per content delta.
- Tool call: when the request declares tools and its last message is a user turn (not a tool result) whose text
  contains "call a tool": one call of the first tool with arguments `{"query": "<first 40 chars>"}`, streamed in
  `chunks` fragments (fewer if the arguments are shorter).
- Reasoning: `reasoning` words (default 3) before the answer when asked: DeepSeek `deepseek*reasoner*` models or
  `thinking: {type: enabled}` (streamed as `reasoning_content`), Anthropic `thinking` enabled/adaptive (a thinking
  block with a signature), OpenAI `reasoning_effort` other than none (hidden; only billed as reasoning_tokens).
- `max_completion_tokens` / `max_tokens` caps reasoning + answer pieces: finish_reason length / stop_reason max_tokens.

Token counts (tokenizer.py; `POST /_fake/tokenize {"text": ...}` counts one message):
- prompt = (characters of all message text) // 4 + number of messages. Text = string contents, `text` parts /
  blocks and tool_result contents; an Anthropic top-level `system` counts as a message; images, tool definitions
  and tool-call arguments count nothing.
- output = pieces generated: reasoning words + answer words, or + tool-argument fragments.
- cache: `cache_read=N` / `cache_write=N` from the scenario; otherwise an Anthropic request with `cache_control`
  anywhere reads prompt // 2 and writes prompt // 4. The prompt total is max(prompt, read + write); Anthropic
  `input_tokens` = total - read - write. DeepSeek has no write counter: writes there are ordinary (miss) input.
- embeddings: per input, characters // 4 + 1 (token arrays: their length); vectors are unit-length, seeded by the
  input, `dimensions` long (default 8).

Scenario: comma-separated settings from the `x-fake-scenario` header and from every `[[scenario: ...]]` marker in
the last user message (markers win; the text is not stripped): `first_byte_ms=N chunk_interval_ms=N chunks=N
reasoning=N keepalive_ms=N status=N retry_after=S fail_times=N cut_after=N error_after=N hang no_usage
hostile_usage[=mixed|negative|float|absurd|string] zero_input_in_start cache_read=N cache_write=N` — see `Scenario`.
With `fail_times=N` the failure settings (status, hang, cut_after, error_after) hit only the first N attempts of a
request; attempts share a key: the `x-request-id` or `idempotency-key` header, else a hash of the body.
Unknown settings are answered 400 so typos show.

Bill: a request is billed once its answer starts (after first_byte_ms): the whole prompt, and the output pieces
generated until it completed, was cut, hit its in-band error or the client disconnected (an Anthropic stream
bills at least the 1 output token its message_start reported). HTTP errors and hangs bill nothing.
`GET /_fake/bill/<key>` answers the bill entries of one request key (Tollgate's request id) as JSON.
"""

from __future__ import annotations

from tests.support.fake_upstream.ledger import BillEntry, Prices, RecordedRequest, Tokens
from tests.support.fake_upstream.scenario import Scenario
from tests.support.fake_upstream.server import running_fake_upstream
from tests.support.fake_upstream.upstream import FakeConfig, FakeUpstream

__all__ = [
    "BillEntry",
    "FakeConfig",
    "FakeUpstream",
    "Prices",
    "RecordedRequest",
    "Scenario",
    "Tokens",
    "running_fake_upstream",
]
