"""What the spawn form shows of each profile's GPUs now: free and total whole GPUs, or the
slices of its MIG profile, and why it cannot be started here (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .profiles import Profile


@dataclass(frozen=True)
class ProfileAvailability:
    """GPUs right now, for one profile: `reason` set means it cannot be started now."""

    free: int
    total: int
    reason: str | None = None


def profile_availability(
    visible: Sequence[Profile],
    free: int | None,
    total: int,
    slices: Mapping[str, tuple[int, int]],
    reasons: Mapping[str, str | None],
) -> dict[str, ProfileAvailability] | None:
    """Each profile's figures for the form: whole GPUs, or the slices of its MIG profile
    (`slices`: profile -> (free, on the host)), with the reason where it cannot run here
    (`reasons`: slug -> sentence). None when every profile has the host's figures."""
    if not any(reasons.values()) and not any(p.mig for p in visible):
        return None
    figures: dict[str, ProfileAvailability] = {}
    for p in visible:
        reason = reasons.get(p.slug)
        if free is None and not reason:
            continue  # the host's figures are unknown: they stay unknown
        if p.mig:
            slice_free, slice_total = slices.get(p.mig, (0, 0))
            figures[p.slug] = ProfileAvailability(slice_free, slice_total, reason)
        else:
            figures[p.slug] = ProfileAvailability(free or 0, total, reason)
    return figures
