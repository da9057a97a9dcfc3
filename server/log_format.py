"""Log line formats: `text` for people, `json` (one object per line) for collectors.

Both carry the request id of the call being served and the metadata fields a line was given
(`extra={"fields": {...}}`) — never content: callers only ever log metadata.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

from server.interceptors import current_request_id

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message key=value …`"""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)
        self._second = -1
        self._stamp = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """As logging's own (`2026-11-30 07:35:48,739`, local time), the date and time part made once a second."""
        second = int(record.created)
        if second != self._second:
            self._stamp = time.strftime(self.default_time_format, self.converter(record.created))
            self._second = second
        return f"{self._stamp},{int(record.msecs):03d}"

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        pairs = " ".join([f"{key}={value}" for key, value in _fields(record).items()])
        return f"{line} {pairs}" if pairs else line


class JsonFormatter(logging.Formatter):
    """`{"time", "level", "logger", "message", "request_id", …fields, "exception"}` per line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_fields(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    request_id = current_request_id()
    if request_id:
        fields["request_id"] = request_id
    fields.update(getattr(record, "fields", None) or {})
    return fields


def formatter(kind: str) -> logging.Formatter:
    return JsonFormatter() if kind == "json" else TextFormatter()
