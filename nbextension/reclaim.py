"""The idle-GPU notice of one server: what the hub's reclaim service announced, and "keep".

The reclaim service (hub side, `spawner/services/gpu_reclaim.py`) decides; this server only
keeps what it was told so the panel and the status bar can show it, and records when its
owner pressed "keep" so the service counts that as activity at its next look. Pure state
behind a lock: handlers on the event loop write it, the status handler reads it.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

MAX_MESSAGE = 300  # characters; the notice is one sentence, not a document


class NoticeError(ValueError):
    """A warning body that cannot be shown; the message says what is wrong."""


def parse_warning(body: Any, now: float) -> dict[str, Any]:
    """The warning a reclaim service posted, checked: stop_at (unix seconds, in the future),
    idle_seconds (>= 0) and an optional message."""
    if not isinstance(body, Mapping):
        raise NoticeError('The warning must be a JSON object like {"stop_at": 1700000000}.')
    unknown = set(body) - {"stop_at", "idle_seconds", "message"}
    if unknown:
        raise NoticeError(f"Unknown fields in the warning: {sorted(unknown)}.")
    stop_at = body.get("stop_at")
    if not _is_number(stop_at) or stop_at <= now:
        raise NoticeError("stop_at must be a time in the future, in unix seconds.")
    idle = body.get("idle_seconds", 0)
    if not _is_number(idle) or idle < 0:
        raise NoticeError("idle_seconds must be a number of seconds, 0 or more.")
    message = body.get("message", "")
    if not isinstance(message, str) or len(message) > MAX_MESSAGE:
        raise NoticeError(f"message must be text of at most {MAX_MESSAGE} characters.")
    return {"stop_at": float(stop_at), "idle_seconds": float(idle), "message": message}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class ReclaimNotice:
    """The current warning (or none) and the last time the owner pressed "keep"."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._warning: dict[str, Any] | None = None
        self._kept_at: float | None = None

    def warn(self, body: Any) -> dict[str, Any]:
        """Show a warning (NoticeError when the body is not one)."""
        warning = parse_warning(body, self._clock())
        with self._lock:
            self._warning = warning
        return self.document()

    def clear(self) -> dict[str, Any]:
        """The service saw activity again: no warning."""
        with self._lock:
            self._warning = None
        return self.document()

    def keep(self) -> dict[str, Any]:
        """The owner wants to keep the GPUs: counts as activity, the warning goes away."""
        with self._lock:
            self._warning = None
            self._kept_at = self._clock()
        return self.document()

    def document(self) -> dict[str, Any]:
        with self._lock:
            warning = dict(self._warning) if self._warning else None
            kept_at = self._kept_at
        if warning is not None and warning["stop_at"] <= self._clock():
            warning["seconds_left"] = 0.0
        elif warning is not None:
            warning["seconds_left"] = round(warning["stop_at"] - self._clock(), 1)
        return {"warning": warning, "kept_at": kept_at}

    def json(self) -> str:
        return json.dumps(self.document(), separators=(",", ":"))
