"""GPU figures on the hub's own `/hub/metrics` (JupyterHub's Prometheus registry).

In the hub process: spawn refusals by reason and spawn durations per profile, recorded by
the spawner through `record_refusal` / `record_spawn`; and the fleet's figures (GPUs total,
held and held-but-idle per profile and per group, GPUs reclaimed) from the snapshot file
the operations service writes after each look. A snapshot older than three looks is not
exported: no figure is better than a stale one.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

# A child of the hub's own logger: its lines go where (and in the format) the hub's go.
log = logging.getLogger("JupyterHub.cudaspawner")

# Why a spawn was refused: a short, fixed set, so the label stays cheap to index.
REFUSAL_REASONS = (
    "no_free_gpu",
    "gpu_quota",
    "invalid_choice",
    "no_gpu_runtime",
    "image_missing",
    "image_incompatible",  # the image cannot run on this host's GPUs (issue 27)
    "gpu_budget",  # over a hard GPU-hour budget (issue 26)
    "other",
)

SPAWN_REFUSALS = Counter(
    "cudaspawner_spawn_refusals",
    "Spawns refused with a message to the user, by reason.",
    ["reason"],
)
SPAWN_DURATION = Histogram(
    "cudaspawner_spawn_duration_seconds",
    "Seconds from the start of a spawn to a ready server, per profile.",
    ["profile"],
    buckets=(1, 2, 3, 5, 8, 13, 20, 30, 60, 120, float("inf")),
)


GPU_LINE_LENGTH = Gauge(
    "cudaspawner_gpu_line_length",
    "Starts waiting in the line for busy GPUs, per pool.",
    ["pool"],
)
GPU_LINE_WAIT = Histogram(
    "cudaspawner_gpu_line_wait_seconds",
    "Seconds a start waited in the line for GPUs before its GPUs were given.",
    buckets=(5, 30, 60, 300, 900, 1800, 3600, 7200, 14400, 28800, float("inf")),
)
GPU_LINE_STARTS = Counter(
    "cudaspawner_gpu_line_starts",
    "Servers the hub started by itself from the line for GPUs.",
)


def record_line(pool: str, length: int) -> None:
    """The pool's line length, after someone joined or left it."""
    GPU_LINE_LENGTH.labels(pool).set(length)


def record_line_start(waited: float) -> None:
    """A start from the line: how long it waited."""
    GPU_LINE_WAIT.observe(waited)
    GPU_LINE_STARTS.inc()


def record_refusal(
    reason: str,
    *,
    user: str = "",
    server: str = "",
    profile: str = "",
    gpus: int | None = None,
    message: str = "",
) -> None:
    """Count a refused spawn and log it with its fields (JSON logs index them)."""
    label = reason if reason in REFUSAL_REASONS else "other"
    SPAWN_REFUSALS.labels(label).inc()
    log.info(
        "Spawn refused (%s): %s",
        label,
        message or "-",
        extra={
            "user": user,
            "server": server,
            "profile": profile,
            "gpus": gpus,
            "reason": label,
            "event": "spawn_refused",
        },
    )


def record_spawn(
    profile: str, seconds: float, *, user: str = "", server: str = "", gpus: list[str] | None = None
) -> None:
    """Observe one spawn's duration for its profile and log it with its fields."""
    SPAWN_DURATION.labels(profile or "").observe(seconds)
    log.info(
        "Spawned %s (%s) in %.2f s",
        server or user,
        profile or "-",
        seconds,
        extra={
            "user": user,
            "server": server,
            "profile": profile,
            "gpus": gpus,
            "seconds": round(seconds, 3),
            "event": "spawned",
        },
    )


class FleetCollector(Collector):
    """The fleet's figures, read from the operations service's snapshot at each scrape."""

    def __init__(self, snapshot: Path, clock=time.time) -> None:
        self.snapshot = snapshot
        self.clock = clock

    def _read(self) -> dict | None:
        try:
            data = json.loads(self.snapshot.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            log.warning("Fleet snapshot %s unreadable: %s", self.snapshot, e)
            return None
        written, interval = data.get("written_at"), data.get("interval") or 30
        if not isinstance(written, (int, float)) or self.clock() - written > 3 * interval + 5:
            return None
        return data

    def collect(self) -> Iterator:
        data = self._read()
        if data is None:
            return
        if isinstance(data.get("total"), int):
            yield GaugeMetricFamily(
                "cudaspawner_gpus_total", "GPUs of the hub's inventory.", value=data["total"]
            )
        for name, key, label, text in (
            ("cudaspawner_gpus_held", "held_by_profile", "profile", "GPUs held, per profile."),
            (
                "cudaspawner_gpus_held_by_group",
                "held_by_group",
                "group",
                "GPUs held, per group of their holder (a user in two groups counts in both).",
            ),
            (
                "cudaspawner_gpus_idle",
                "idle_by_profile",
                "profile",
                "GPUs held but idle (below the reclaim threshold), per profile.",
            ),
            (
                "cudaspawner_gpus_idle_by_group",
                "idle_by_group",
                "group",
                "GPUs held but idle, per group of their holder.",
            ),
        ):
            family = GaugeMetricFamily(name, text, labels=[label])
            for value, count in sorted((data.get(key) or {}).items()):
                family.add_metric([value], count)
            yield family
        reclaimed = CounterMetricFamily(
            "cudaspawner_gpus_reclaimed",
            "GPUs freed by stopping idle servers, per profile.",
            labels=["profile"],
        )
        for profile, count in sorted((data.get("reclaimed_by_profile") or {}).items()):
            reclaimed.add_metric([profile], count)
        yield reclaimed
        yield from _usage_families(data.get("usage") or {})
        yield GaugeMetricFamily(
            "cudaspawner_fleet_snapshot_age_seconds",
            "Seconds since the operations service last looked at the fleet.",
            value=max(0.0, self.clock() - data["written_at"]),
        )


def _usage_families(usage: dict) -> Iterator:
    """The GPU-hours record's counters: per group and profile, never per user (cardinality)."""
    held = CounterMetricFamily(
        "cudaspawner_gpu_seconds",
        "GPU-seconds held, per group of the holder (when the hold started) and profile.",
        labels=["group", "profile"],
    )
    idle = CounterMetricFamily(
        "cudaspawner_gpu_idle_seconds",
        "GPU-seconds held below the reclaim threshold, per group and profile.",
        labels=["group", "profile"],
    )
    for group, profiles in sorted((usage.get("gpu_seconds") or {}).items()):
        for profile, (seconds, idle_seconds) in sorted(profiles.items()):
            held.add_metric([group, profile], seconds)
            idle.add_metric([group, profile], idle_seconds)
    budget = GaugeMetricFamily(
        "cudaspawner_gpu_budget_used_ratio",
        "Share of each group's GPU-hour budget used this period (1 = all of it).",
        labels=["group"],
    )
    for group, ratio in sorted((usage.get("budget_used") or {}).items()):
        budget.add_metric([group], ratio)
    yield from (held, idle, budget)


_registered: FleetCollector | None = None


class SliceCollector(Collector):
    """The host's MIG slices per MIG profile, free now and held, read from the hub's own
    GPU table at each scrape (nothing when the table is not made yet, or has no slices)."""

    def __init__(self, figures: Callable[[], dict[str, tuple[int, int]]]) -> None:
        self.figures = figures

    def collect(self) -> Iterator:
        figures = self.figures()
        if not figures:
            return
        family = GaugeMetricFamily(
            "cudaspawner_mig_slices",
            "MIG slices of the hub's host, per MIG profile: free now, or held.",
            labels=["profile", "state"],
        )
        for profile, (free, total) in sorted(figures.items()):
            family.add_metric([profile, "free"], free)
            family.add_metric([profile, "held"], total - free)
        yield family


_slices: SliceCollector | None = None


def register_slice_metrics(figures: Callable[[], dict[str, tuple[int, int]]]) -> None:
    """Add the host's MIG slice figures to the hub's registry (once per process)."""
    global _slices
    if _slices is None:
        _slices = SliceCollector(figures)
        REGISTRY.register(_slices)


def fleet_figures() -> dict:
    """The operations service's latest look, as this hub process reads it ({} when there is
    none, or it is stale): the GPU line's estimate and group shares use it."""
    data = _registered._read() if _registered is not None else None
    return data or {}


def register_fleet_metrics(snapshot: Path) -> FleetCollector:
    """Add the fleet's figures to the hub's registry (once per process)."""
    global _registered
    if _registered is None:
        _registered = FleetCollector(snapshot)
        REGISTRY.register(_registered)
    else:
        _registered.snapshot = snapshot
    return _registered
