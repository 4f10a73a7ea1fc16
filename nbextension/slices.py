"""A server given MIG slices sees them as its GPUs (issue 27).

Inside a container given ``NVIDIA_VISIBLE_DEVICES=MIG-...``, NVML still enumerates the
parent GPU. Its utilisation, power and clocks are the whole card's, shared with every other
slice's user: showing them as this server's would mislead. So each named slice becomes a
reading of its own, with the slice's name and memory and the card's processes seen through
it; NVML has no utilisation per MIG slice, so that stays unknown (the panel says so). Pure.
"""

from __future__ import annotations

from collections.abc import Iterable

from .backend import GpuReading


def named_slices(nvidia_visible_devices: str | None) -> frozenset[str]:
    """The MIG UUIDs NVIDIA_VISIBLE_DEVICES names (lower case); empty when it names none."""
    tokens = (t.strip().lower() for t in (nvidia_visible_devices or "").split(","))
    return frozenset(t for t in tokens if t.startswith("mig-"))


def as_slices(readings: Iterable[GpuReading], slices: frozenset[str]) -> list[GpuReading]:
    """Readings with each GPU that this server has only slices of replaced by those slices."""
    if not slices:
        return list(readings)
    result: list[GpuReading] = []
    for reading in readings:
        mine = [m for m in reading.mig or () if m.uuid.lower() in slices]
        if not mine:
            result.append(reading)
            continue
        result.extend(
            GpuReading(
                index=reading.index,
                uuid=m.uuid,
                name=m.name,
                memory_used=m.memory_used,
                memory_total=m.memory_total,
                processes=reading.processes,
                slice_of=reading.name,
            )
            for m in mine
        )
    return result
