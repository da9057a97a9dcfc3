"""Log line formats: the text format's time is logging's own, made once a second."""

from __future__ import annotations

import logging

from server.log_format import TextFormatter


def _record(created: float) -> logging.LogRecord:
    record = logging.LogRecord("server.services.relay", logging.INFO, __file__, 1, "relayed", None, None)
    record.created = created
    record.msecs = (created - int(created)) * 1000
    return record


def test_the_text_time_is_loggings_own_within_a_second_and_across_seconds() -> None:
    ours, loggings = TextFormatter(), logging.Formatter()
    for created in (1_796_022_168.0, 1_796_022_168.0005, 1_796_022_168.5, 1_796_022_168.9999, 1_796_022_169.25, 5.5):
        record = _record(created)
        assert ours.formatTime(record) == loggings.formatTime(record)


def test_a_text_line_carries_its_fields_after_the_message() -> None:
    record = _record(1_796_022_168.25)
    record.fields = {"model": "deepseek-chat", "status": "ok"}
    line = TextFormatter().format(record)
    assert line.endswith(" INFO server.services.relay: relayed model=deepseek-chat status=ok")
    assert line.startswith(logging.Formatter().formatTime(record))
