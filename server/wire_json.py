"""JSON bodies on the wire (requests, answers, stream chunks, error bodies), through orjson.

A relayed call parses and writes JSON several times, and a stream once more per chunk: orjson took 7 % of the
instructions off a REST call and 17 % off a 16-chunk stream against the standard library's `json`
(`bench/RESULTS.md`). It is strict RFC 8259 where `json` is lenient: NaN, Infinity and lone surrogates are refused,
and integers past 64 bits read as floats. JSON held inside a field (tool-call arguments, stored lists, log lines)
keeps the standard library's `json`.
"""

from __future__ import annotations

import orjson

dumps = orjson.dumps
"""Compact UTF-8 bytes; a TypeError (orjson.JSONEncodeError) for what JSON cannot hold."""

loads = orjson.loads
"""From bytes or str; a ValueError (orjson.JSONDecodeError, a json.JSONDecodeError) for what is not JSON."""
