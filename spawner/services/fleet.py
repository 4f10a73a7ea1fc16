"""The hub's GPU table as data: which GPU, held by whom, in which server and profile, since
when, how busy right now, idle for how long. Pure functions of the hub's active servers (with
their containers' labels), the inventory, the live figures and the reclaim watches; the admin
page renders the rows and the hub's metrics count the summary.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..gpu.allocator import Gpu, available
from ..gpu.labels import format_since, read_holding
from .gpu_reclaim import Watch


@dataclass(frozen=True)
class GpuServer:
    """One active server of this hub that holds GPUs (from the hub API and its labels)."""

    user: str
    name: str  # the server's name, "" for the default server
    key: str  # the allocator's key: "alice" or "alice/name"
    gpu_ids: tuple[str, ...]
    profile: str = ""
    since: datetime | None = None
    groups: tuple[str, ...] = ()
    url: str = ""  # the server's path on the proxy, e.g. /user/alice/


@dataclass(frozen=True)
class GpuRow:
    gpu: str
    index: int | None
    model: str
    user: str = ""
    server: str = ""  # "alice" or "alice/name"; "" for a free GPU
    server_name: str = ""
    profile: str = ""
    since: str = ""
    utilisation: float | None = None
    memory_used: int | None = None
    memory_total: int | None = None
    idle_seconds: float | None = None  # None: busy, unknown or free
    stop_at: float | None = None  # a reclaim warning stands until then
    unreadable: str = ""  # why the server's last answer could not be read; "" when it could

    @property
    def free(self) -> bool:
        return not self.server


@dataclass(frozen=True)
class FleetSummary:
    total: int | None  # None: no inventory given
    held_by_profile: dict[str, int] = field(default_factory=dict)
    held_by_group: dict[str, int] = field(default_factory=dict)
    idle_by_profile: dict[str, int] = field(default_factory=dict)
    idle_by_group: dict[str, int] = field(default_factory=dict)


def gpu_servers(
    users: Sequence[Mapping[str, Any]], containers: Sequence[Mapping[str, Any]]
) -> tuple[list[GpuServer], list[str]]:
    """This hub's active servers that hold GPUs, and problems worth a log line.

    `users` is the hub API's user list (with `servers`, their `state.object_id` and
    `groups`); `containers` the engine's list of labelled containers. Only containers the
    hub names as a server's object count: another hub on the same engine is not ours.
    """
    by_id = {c.get("Id"): c for c in containers}
    servers: list[GpuServer] = []
    problems: list[str] = []
    for user in users:
        for name, server in (user.get("servers") or {}).items():
            if not server.get("ready"):
                continue  # starting or stopping: its API is not there to ask
            state = server.get("state") or {}
            container = by_id.get(state.get("object_id"))
            if container is None:
                continue  # CPU-only (no GPU label), or not started yet
            holding, reason = read_holding(container.get("Labels") or {})
            if reason:
                problems.append(f"server {user['name']}/{name}: {reason}")
            if holding is None:
                continue
            servers.append(
                GpuServer(
                    user=user["name"],
                    name=name,
                    key=holding.server,
                    gpu_ids=holding.gpu_ids,
                    profile=holding.profile,
                    since=holding.since,
                    groups=tuple(user.get("groups") or ()),
                    url=server.get("url") or "",
                )
            )
    return servers, problems


def _live_for(server: GpuServer, figures: Sequence[Mapping[str, Any]]) -> list[Mapping | None]:
    """The server's own GPU readings, one per GPU id: by UUID where the ids are UUIDs, else in
    order (the container sees its GPUs in the order Docker was given them)."""
    figures = [g for g in figures if isinstance(g, Mapping)]
    by_uuid = {g.get("uuid"): g for g in figures if isinstance(g.get("uuid"), str)}
    if all(i in by_uuid for i in server.gpu_ids):
        return [by_uuid[i] for i in server.gpu_ids]
    ordered = sorted(
        figures, key=lambda g: g.get("index") if isinstance(g.get("index"), int) else 0
    )
    return [ordered[k] if k < len(ordered) else None for k in range(len(server.gpu_ids))]


def fleet_rows(
    servers: Iterable[GpuServer],
    inventory: Sequence[Gpu] | None,
    live: Mapping[str, Sequence[Mapping[str, Any]]],
    watches: Mapping[str, Watch],
    now: float,
    unreadable: Mapping[str, str] | None = None,
) -> list[GpuRow]:
    """One row per GPU: every held GPU, and every free one the inventory knows.
    `unreadable`: server key -> why its last answer could not be read (shown on its rows)."""
    unreadable = unreadable or {}
    by_id = {g.id: g for g in inventory or ()}
    rows: list[GpuRow] = []
    held: set[str] = set()
    for s in servers:
        watch = watches.get(s.key, Watch())
        idle = watch.idle_seconds(now) if watch.idle_since is not None else None
        since = format_since(s.since) if s.since else ""
        for gpu_id, reading in zip(s.gpu_ids, _live_for(s, live.get(s.key, ())), strict=True):
            gpu = by_id.get(gpu_id)
            reading = reading or {}
            held.add(gpu_id)
            rows.append(
                GpuRow(
                    gpu=gpu_id,
                    index=gpu.index if gpu else None,
                    model=(gpu.name if gpu and gpu.name else reading.get("name")) or "",
                    user=s.user,
                    server=s.key,
                    server_name=s.name,
                    profile=s.profile,
                    since=since,
                    utilisation=reading.get("utilization_gpu"),
                    memory_used=reading.get("memory_used"),
                    memory_total=reading.get("memory_total"),
                    idle_seconds=idle,
                    stop_at=watch.stop_at,
                    unreadable=unreadable.get(s.key, ""),
                )
            )
    # Free: what could be given now (a GPU with a slice held is not, nor a slice of a GPU
    # held whole).
    for g in available(inventory or (), held):
        rows.append(GpuRow(gpu=g.id, index=g.index, model=g.name or ""))
    rows.sort(key=lambda r: (r.index is None, r.index or 0, r.gpu, r.server))
    return rows


def summarise(
    rows: Sequence[GpuRow], servers: Iterable[GpuServer], inventory: Sequence[Gpu] | None
) -> FleetSummary:
    """GPUs held and held-but-idle, per profile and per group (a GPU of a user in two groups
    counts in both; "" for users in no group)."""
    groups = {s.key: s.groups or ("",) for s in servers}
    held_p: Counter[str] = Counter()
    held_g: Counter[str] = Counter()
    idle_p: Counter[str] = Counter()
    idle_g: Counter[str] = Counter()
    for r in rows:
        if r.free:
            continue
        held_p[r.profile] += 1
        for g in groups.get(r.server, ("",)):
            held_g[g] += 1
        if r.idle_seconds is not None:
            idle_p[r.profile] += 1
            for g in groups.get(r.server, ("",)):
                idle_g[g] += 1
    return FleetSummary(
        total=sum(1 for g in inventory if not g.parent) if inventory is not None else None,
        held_by_profile=dict(held_p),
        held_by_group=dict(held_g),
        idle_by_profile=dict(idle_p),
        idle_by_group=dict(idle_g),
    )
