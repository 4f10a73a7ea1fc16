"""Sizes written as text ("8G", "2g", "512mb"): one reader for every place that takes one.

Three spellings meet in a deployment, each with its own units, and all are read here:
JupyterHub's memory limits (`JUPYTERHUB`: a number and an upper-case K, M, G or T),
Docker's sizes such as `shm_size` (`DOCKER`: a number, optionally k, m or g, optionally b),
and the deployment's environment (`ENVIRONMENT`: any of them, any case). Units are powers
of 1024, as JupyterHub and Docker have them. Pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]?)([bB]?)\s*$")
_POWERS = "kmgt"


@dataclass(frozen=True)
class Spelling:
    """Which units a setting takes, whether one is required, and whether a `b` may follow."""

    units: str
    unit_required: bool = False
    b_suffix: bool = False


JUPYTERHUB = Spelling("KMGT", unit_required=True)
DOCKER = Spelling("kmgKMG", b_suffix=True)
ENVIRONMENT = Spelling("kmgtKMGT", b_suffix=True)


def read_size(text: object, spelling: Spelling) -> tuple[float, str] | None:
    """(number, unit) for a size in `spelling` (unit "" for bytes, else one of k, m, g, t),
    or None when `text` is not one."""
    if not isinstance(text, str):
        return None
    match = _SIZE.match(text)
    if not match:
        return None
    number, unit, b = match.groups()
    if unit.lower() == "b" and not b:  # "512b": the b is the suffix, not a unit
        unit, b = "", unit
    if (unit and unit not in spelling.units) or (spelling.unit_required and not unit):
        return None
    if b and not spelling.b_suffix:
        return None
    return float(number), unit.lower()


def size_bytes(value: int | str | None, spelling: Spelling) -> int | None:
    """Bytes for an int (as is) or a size in `spelling`; ValueError when it is neither."""
    if value is None or isinstance(value, int):
        return value
    read = read_size(value, spelling)
    if read is None:
        raise ValueError(f"{value!r} is not a size such as '8G'.")
    number, unit = read
    return int(number * 1024 ** (_POWERS.index(unit) + 1 if unit else 0))
