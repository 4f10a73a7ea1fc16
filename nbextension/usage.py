"""The owner's GPU-hours, as the hub's operations service last sent them (issue 26): this
week's and this month's, and the budget warnings that apply. Shown by the GPU panel.

The service decides; this server only keeps what it was told, checked, so a bad body
shows nothing rather than breaking the panel. Pure state behind a lock.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

MAX_WARNINGS = 5
MAX_SENTENCE = 300  # characters


class UsageError(ValueError):
    """A usage body that cannot be shown; the message says what is wrong."""


def parse_usage(body: Any) -> dict[str, Any]:
    """{"week_hours": >= 0, "month_hours": >= 0, "warnings": [sentences]}, checked."""
    if not isinstance(body, Mapping):
        raise UsageError('The usage must be a JSON object like {"week_hours": 1.5}.')
    unknown = set(body) - {"week_hours", "month_hours", "warnings"}
    if unknown:
        raise UsageError(f"Unknown fields in the usage: {sorted(unknown)}.")
    hours = {}
    for key in ("week_hours", "month_hours"):
        value = body.get(key, 0)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise UsageError(f"{key} must be a number of GPU-hours, 0 or more.")
        if not math.isfinite(value) or value < 0:
            raise UsageError(f"{key} must be a number of GPU-hours, 0 or more.")
        hours[key] = float(value)
    warnings = body.get("warnings", [])
    if not isinstance(warnings, list) or len(warnings) > MAX_WARNINGS:
        raise UsageError(f"warnings must be a list of at most {MAX_WARNINGS} sentences.")
    if not all(isinstance(w, str) and len(w) <= MAX_SENTENCE for w in warnings):
        raise UsageError(f"Each warning must be text of at most {MAX_SENTENCE} characters.")
    return {**hours, "warnings": list(warnings)}


class UsageNotice:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._usage: dict[str, Any] | None = None

    def set(self, body: Any) -> dict[str, Any] | None:
        usage = {**parse_usage(body), "updated_at": self._clock()}
        with self._lock:
            self._usage = usage
        return self.document()

    def document(self) -> dict[str, Any] | None:
        with self._lock:
            return dict(self._usage) if self._usage else None

    def json(self) -> str:
        return json.dumps(self.document(), separators=(",", ":"))
