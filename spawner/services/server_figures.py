"""One user server's GPU status answer, checked: untrusted input in, trusted figures out.

A user controls their own server completely, so what it answers to
`GET api/gpu/v1/status?history=0` is hostile input. Two requirements:

1. Nothing the server sends can make the reclaim or the admin page fail, or keep a server
   from being reclaimed: every figure the service uses is a number of the right type, finite
   and in range, and "keep" cannot be pressed in the future.
2. A server that sends garbage is *unreadable*: it is shown as such and decides nothing
   (the reclaim never stops a server on a guess). One bad GPU entry makes the whole answer
   unreadable; a figure that is absent (or null) is only unknown.

`problem` sentences are ours alone: they never repeat text from the server, so they are safe
to log and to show.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

MAX_STATUS_BYTES = 256 * 1024  # a status answer without history is a few KiB
MAX_GPUS = 64
MAX_TEXT = 128  # characters of a GPU's uuid or name
MAX_INDEX = 1023
MAX_MEMORY = 2**50  # bytes (1 PiB): far above any GPU
CLOCK_SKEW = 5.0  # seconds a server's clock may run ahead of the service's

_STATE = re.compile(r"[a-z_]{1,32}")  # our servers' states ("ok", "no_gpu", ...)


@dataclass(frozen=True)
class GpuFigures:
    """One GPU as its server reports it, checked. None: the server did not know."""

    uuid: str | None = None
    index: int | None = None
    name: str = ""
    utilization_gpu: float | None = None  # percent, 0 to 100
    memory_used: int | None = None  # bytes
    memory_total: int | None = None  # bytes


@dataclass(frozen=True)
class ServerFigures:
    """A server's answer, checked: its GPUs and its owner's last "keep", or why not."""

    readable: bool
    gpus: tuple[GpuFigures, ...] = ()
    kept_at: float | None = None  # a time in the past; None: never, or not believable
    problem: str = ""  # why unreadable, a short sentence of ours


NO_ANSWER = ServerFigures(readable=False, problem="The server did not answer.")


class _Unreadable(Exception):
    pass


def read_status(document: object, now: float) -> ServerFigures:
    """The checked figures of one server's parsed status answer (None: it did not answer)."""
    if document is None:
        return NO_ANSWER
    try:
        return _read(document, now)
    except _Unreadable as e:
        return ServerFigures(readable=False, problem=str(e))


def parse_status_body(body: bytes, now: float) -> ServerFigures:
    """The checked figures of one server's raw status answer: unreadable when it is larger
    than MAX_STATUS_BYTES or not strict JSON (NaN and Infinity are not JSON)."""
    if len(body) > MAX_STATUS_BYTES:
        return ServerFigures(
            readable=False, problem=f"The answer is larger than {MAX_STATUS_BYTES // 1024} KiB."
        )
    try:
        document = strict_json(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return ServerFigures(readable=False, problem="The answer is not valid JSON.")
    if document is None:
        return ServerFigures(readable=False, problem="The answer is not a JSON object.")
    return read_status(document, now)


def strict_json(body: bytes) -> Any:
    """JSON as the standard has it: ValueError for NaN, Infinity and -Infinity too."""
    return json.loads(body, parse_constant=_reject_constant)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _read(document: object, now: float) -> ServerFigures:
    if not isinstance(document, dict):
        raise _Unreadable("The answer is not a JSON object.")
    state = document.get("state")
    if state != "ok":
        if isinstance(state, str) and _STATE.fullmatch(state):
            raise _Unreadable(f"The server reports no GPU figures (state {state}).")
        raise _Unreadable("The server reports no GPU figures.")
    gpus = document.get("gpus")
    if not isinstance(gpus, list):
        raise _Unreadable("The answer has no list of GPUs.")
    if len(gpus) > MAX_GPUS:
        raise _Unreadable(f"The answer lists more than {MAX_GPUS} GPUs.")
    return ServerFigures(
        readable=True,
        gpus=tuple(_gpu(entry, k) for k, entry in enumerate(gpus)),
        kept_at=_kept_at(document.get("reclaim"), now),
    )


def _gpu(entry: object, k: int) -> GpuFigures:
    if not isinstance(entry, dict):
        raise _Unreadable(f"GPU entry {k} is not an object.")
    utilisation = None
    if entry.get("utilization_gpu") is not None:
        utilisation = finite_number(entry["utilization_gpu"])
        if utilisation is None or not 0 <= utilisation <= 100:
            raise _Unreadable(f"GPU entry {k}: utilization_gpu is not a number from 0 to 100.")
    index = _whole(entry.get("index"), MAX_INDEX, f"GPU entry {k}: index")
    used = _whole(entry.get("memory_used"), MAX_MEMORY, f"GPU entry {k}: memory_used")
    total = _whole(entry.get("memory_total"), MAX_MEMORY, f"GPU entry {k}: memory_total")
    if used is not None and total is not None and used > total:
        raise _Unreadable(f"GPU entry {k}: memory_used is more than memory_total.")
    return GpuFigures(
        uuid=_text(entry.get("uuid"), f"GPU entry {k}: uuid") or None,
        index=index,
        name=_text(entry.get("name"), f"GPU entry {k}: name"),
        utilization_gpu=utilisation,
        memory_used=used,
        memory_total=total,
    )


def finite_number(value: object) -> float | None:
    """The value as a float when it is a finite real number (a bool is not), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float
        return None
    return number if math.isfinite(number) else None


def _whole(value: object, most: int, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= most:
        raise _Unreadable(f"{what} is not a whole number from 0 to {most}.")
    return value


def _text(value: object, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_TEXT or not value.isprintable():
        raise _Unreadable(f"{what} is not a line of at most {MAX_TEXT} characters.")
    return value


def _kept_at(notice: object, now: float) -> float | None:
    """The owner's last "keep": a finite time after 0 and not in the future. A server clock
    up to CLOCK_SKEW ahead counts as now; anything later is not believed (None)."""
    if not isinstance(notice, dict):
        return None
    kept_at = finite_number(notice.get("kept_at"))
    if kept_at is None or kept_at <= 0 or kept_at > now + CLOCK_SKEW:
        return None
    return min(kept_at, now)
