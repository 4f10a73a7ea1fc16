"""Idle-GPU reclaim: when a server whose GPUs sit idle is warned, and when it is stopped.

`decide` is pure: one server's watch, one look at its GPUs, its policy -> the new watch and
what to do. The service loop (`spawner.services.fleet_service`) does the I/O around it.

A look that could not read the GPUs decides nothing: a server is never stopped on a guess.
"Keep" (the owner's button in the GPU panel) counts as activity: the idle period starts
again from that moment, so a kept server is left alone until it has been idle for the
whole period once more.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from traitlets import Bool, Dict, Float, List, Unicode
from traitlets.config import Configurable

from .server_figures import finite_number

Action = Literal["none", "warn", "clear", "stop"]
DEFAULT_POLICY_KEY = "*"


@dataclass(frozen=True)
class ReclaimPolicy:
    """When a profile's servers count as idle, and for how long before they are stopped."""

    idle_after: float  # seconds below the threshold before the warning
    warn_for: float  # seconds between the warning and the stop
    threshold: float = 5.0  # GPU utilisation, percent; below it the GPU is idle

    def sentence(self, idle_seconds: float) -> str:
        return (
            f"Your GPUs have been below {self.threshold:g}% utilisation for "
            f"{_minutes(idle_seconds)}."
        )


@dataclass(frozen=True)
class Look:
    """One reading of a server's GPUs: when, the busiest GPU's utilisation (None: unreadable),
    and the last time its owner pressed "keep" (None: never)."""

    at: float
    utilisation: float | None
    kept_at: float | None = None


@dataclass(frozen=True)
class Watch:
    """What the service remembers of one server between looks."""

    idle_since: float | None = None
    stop_at: float | None = None  # set while a warning stands
    kept_seen: float | None = None  # the last "keep" already counted

    @property
    def warned(self) -> bool:
        return self.stop_at is not None

    def idle_seconds(self, now: float) -> float:
        return 0.0 if self.idle_since is None else max(0.0, now - self.idle_since)


def decide(
    watch: Watch, look: Look, policy: ReclaimPolicy, reclaim: bool = True
) -> tuple[Watch, Action]:
    """The next watch and the action for one look at a server.

    `reclaim=False` (an exempt user, or a profile that is not reclaimed): idleness is still
    tracked (the admin page and the metrics show it), but nothing is warned or stopped, and
    a standing warning is withdrawn.
    """
    if look.utilisation is None:
        return watch, "none"
    withdraw: Action = "clear" if watch.warned else "none"
    # A "keep" later than this look (or not a time at all) is not believed: it would keep
    # the server forever.
    kept_at = look.kept_at if look.kept_at is not None and look.kept_at <= look.at else None
    kept = kept_at is not None and (watch.kept_seen is None or kept_at > watch.kept_seen)
    if kept:
        # The idle period starts again at the press, not at this look.
        idle_since = None if look.utilisation >= policy.threshold else kept_at
        return Watch(idle_since=idle_since, kept_seen=kept_at), withdraw
    if look.utilisation >= policy.threshold:
        return replace(watch, idle_since=None, stop_at=None), withdraw
    idle_since = watch.idle_since if watch.idle_since is not None else look.at
    if not reclaim:
        return replace(watch, idle_since=idle_since, stop_at=None), withdraw
    if watch.warned:
        action: Action = "stop" if look.at >= watch.stop_at else "none"
        return replace(watch, idle_since=idle_since), action
    if look.at - idle_since >= policy.idle_after:
        return replace(watch, idle_since=idle_since, stop_at=look.at + policy.warn_for), "warn"
    return replace(watch, idle_since=idle_since), "none"


# Idleness of servers that are never reclaimed is still shown, judged by this threshold.
UNRECLAIMED = ReclaimPolicy(idle_after=float("inf"), warn_for=float("inf"))


def busiest(gpus: Iterable[Mapping[str, Any]]) -> float | None:
    """The highest utilisation among a server's GPUs; None when none could be read."""
    values = [finite_number(g.get("utilization_gpu")) for g in gpus]
    numbers = [v for v in values if v is not None]
    return max(numbers) if numbers else None


def _minutes(seconds: float) -> str:
    if seconds < 90:
        return f"{round(seconds)} s"
    return f"{round(seconds / 60)} min"


def parse_policies(value: Mapping[str, Any]) -> dict[str, ReclaimPolicy | None]:
    """Policies per profile slug ("*": every other profile); None (or {"enabled": false})
    turns reclaim off for that profile. ValueError with a sentence for anything else."""
    if not isinstance(value, Mapping):
        raise ValueError("GpuReclaim.policies must be a dict of profile slug -> policy.")
    policies: dict[str, ReclaimPolicy | None] = {}
    for slug, entry in value.items():
        where = f"GpuReclaim.policies[{slug!r}]"
        if entry is None or (isinstance(entry, Mapping) and entry.get("enabled") is False):
            policies[slug] = None
            continue
        if not isinstance(entry, Mapping):
            raise ValueError(f"{where} must be a dict with idle_after and warn_for, or None.")
        unknown = set(entry) - {"idle_after", "warn_for", "threshold", "enabled"}
        if unknown:
            raise ValueError(f"{where} has unknown keys {sorted(unknown)}.")
        numbers = {}
        for key, low in (("idle_after", 0.0), ("warn_for", 0.0), ("threshold", 0.0)):
            if key not in entry:
                if key == "threshold":
                    continue
                raise ValueError(f"{where} needs {key} (seconds).")
            number = entry[key]
            if (
                isinstance(number, bool)
                or not isinstance(number, (int, float))
                or not math.isfinite(number)
                or number < low
                or (key != "threshold" and number == 0)
            ):
                raise ValueError(f"{where}.{key} must be a positive number, not {number!r}.")
            numbers[key] = float(number)
        if numbers.get("threshold", 5.0) > 100:
            raise ValueError(f"{where}.threshold is a percentage (0 to 100).")
        policies[slug] = ReclaimPolicy(**numbers)
    return policies


def policy_for(
    policies: Mapping[str, ReclaimPolicy | None],
    profile: str,
    user: str,
    groups: Iterable[str],
    exempt_users: Iterable[str],
    exempt_groups: Iterable[str],
) -> tuple[ReclaimPolicy, bool]:
    """(policy, reclaim) for one server: the profile's policy ("*" for unlisted profiles),
    and whether its server may be warned and stopped (not for exempt users or groups, nor
    for a profile whose policy is None; idleness is then judged by the default threshold)."""
    policy = policies[profile] if profile in policies else policies.get(DEFAULT_POLICY_KEY)
    exempt = user in set(exempt_users) or bool(set(groups) & set(exempt_groups))
    if policy is None:
        return UNRECLAIMED, False
    return policy, not exempt


class GpuReclaim(Configurable):
    """Settings of the idle-GPU reclaim service (`c.GpuReclaim`)."""

    enabled = Bool(
        True,
        help="""Warn, then stop servers whose GPUs stay idle. CPU-only servers are never
        touched by it (jupyterhub-idle-culler handles idle servers of any kind).""",
    ).tag(config=True)

    policies = Dict(
        {DEFAULT_POLICY_KEY: {"idle_after": 3600, "warn_for": 900, "threshold": 5}},
        help="""Per profile slug: {"idle_after": seconds below the threshold before the
        warning, "warn_for": seconds from the warning to the stop, "threshold": GPU
        utilisation in percent (default 5)}. "*" applies to every profile not listed; None
        turns reclaim off for a profile.""",
    ).tag(config=True)

    exempt_users = List(Unicode(), help="User names whose servers are never reclaimed.").tag(
        config=True
    )

    exempt_groups = List(Unicode(), help="Groups whose members' servers are never reclaimed.").tag(
        config=True
    )

    interval = Float(
        30.0,
        help="""Seconds between two looks at the fleet. A server is stopped at its first look
        after the warning's time is up, so the stop comes up to this much later.""",
    ).tag(config=True)
