"""Logs as JSON lines: one object per record, with the fields Loki or ELK index.

Always: time (ISO 8601, UTC), level, logger, message. When the record carries them
(`extra=` at the call site, as `hub_metrics.record_refusal` and the operations service do):
user, server, profile, gpus, reason, event, and a few more. An exception comes as its text.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

FIELDS = (
    "user",
    "server",
    "profile",
    "gpus",
    "reason",
    "event",
    "seconds",
    "stop_at",
    "admin",
    "status",
)


class JsonFormatter(logging.Formatter):
    """`logging.Formatter` writing one JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = (
                    value if isinstance(value, (str, int, float, bool, list)) else str(value)
                )
        if record.exc_info:
            # exc_text: the text log_redaction already masked, where it ran.
            entry["exception"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def logging_config() -> dict:
    """A traitlets `Application.logging_config` that makes the console handler write JSON."""
    return {
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {"console": {"formatter": "json"}},
    }


def use_json_logs(logger: logging.Logger | None = None) -> None:
    """JSON lines on stderr for a plain-logging process (the operations service)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    target = logger or logging.getLogger()
    target.handlers[:] = [handler]
