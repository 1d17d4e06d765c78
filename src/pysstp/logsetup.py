"""Logging for the command line: text or JSON lines on stderr."""

from __future__ import annotations

import json
import logging
import sys

FIELDS = ("peer", "user", "address", "session_id", "event")
"""Record attributes that JSON lines carry as fields when a log call set them (the server's session log
lines do, through ``ServerConnection.log``)."""


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log collectors."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        return json.dumps(line, default=str)


def setup_logging(level: str, fmt: str) -> None:
    """Log to stderr as text or JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter()
        if fmt == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
