"""The operations service process: one look at the fleet every `interval` seconds feeds the
idle-GPU reclaim, the admin page and the hub's fleet metrics.

Started by the hub as a managed service (`python -m spawner.services`, see
`operations.configure_operations`). Each look: the hub's active servers (hub API), the
labels of their containers (the Docker engine's container list, never an exec), each GPU
server's figures (its GPU API through the proxy); then `gpu_reclaim.decide` per server, the
warnings and stops it calls for, the table (`fleet`) and a snapshot file the hub's
`/hub/metrics` reads (`hub_metrics`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ..gpu.allocator import Gpu
from ..gpu.line_store import LineStore
from .fleet import FleetSummary, GpuRow, GpuServer, fleet_rows, gpu_servers, summarise
from .gpu_reclaim import Look, ReclaimPolicy, Watch, busiest, decide, policy_for
from .hub_api import HubApiError
from .hub_client import HubClient
from .line_keeper import line_actions, server_name
from .server_figures import ServerFigures, read_status
from .usage_keeper import UsageKeeper

ContainerLister = Callable[[], Awaitable[list[dict]]]
SNAPSHOT_VERSION = 1


@dataclass
class ReclaimSettings:
    enabled: bool
    policies: dict[str, ReclaimPolicy | None]
    exempt_users: tuple[str, ...] = ()
    exempt_groups: tuple[str, ...] = ()
    interval: float = 30.0


@dataclass
class FleetState:
    """The latest look, as the admin page and the metrics snapshot show it."""

    rows: list[GpuRow] = field(default_factory=list)
    summary: FleetSummary = field(default_factory=lambda: FleetSummary(total=None))
    servers: list[GpuServer] = field(default_factory=list)
    looked_at: float | None = None
    problem: str = ""


class FleetService:
    def __init__(
        self,
        client: HubClient,
        containers: ContainerLister,
        settings: ReclaimSettings,
        inventory: Sequence[Gpu] | None,
        snapshot_path: Path | None = None,
        clock: Callable[[], float] = time.time,
        log: logging.Logger | None = None,
        line: Path | None = None,
        usage: UsageKeeper | None = None,
    ) -> None:
        self.client = client
        self.containers = containers
        self.settings = settings
        self.inventory = list(inventory) if inventory is not None else None
        self.snapshot_path = snapshot_path
        self.clock = clock
        self.log = log or logging.getLogger("cudaspawner.operations")
        self.watches: dict[str, Watch] = {}
        self.live: dict[str, list[dict]] = {}  # checked figures only (server_figures)
        self.unreadable: dict[str, str] = {}  # server key -> why its last answer was unreadable
        self.reclaimed: Counter[str] = Counter()  # GPUs given back, per profile
        self.state = FleetState()
        self.line = LineStore(line) if line is not None else None
        self.usage = usage  # the GPU-hours record's keeper (None: the record is off)
        self._load_reclaimed()

    def _load_reclaimed(self) -> None:
        """Reclaimed GPUs are a counter: it survives a restart of the service."""
        if self.snapshot_path and self.snapshot_path.exists():
            try:
                saved = json.loads(self.snapshot_path.read_text())
                self.reclaimed.update(saved.get("reclaimed_by_profile") or {})
            except (OSError, ValueError) as e:
                self.log.warning("Could not read %s: %s", self.snapshot_path, e)

    async def look(self) -> FleetState:
        """One look at the fleet, and the actions it calls for."""
        try:
            users = await self.client.active_users()
            containers = await self.containers()
        except Exception as e:  # the hub or engine may be back at the next look: never crash
            self.log.warning("Could not look at the fleet: %s", e)
            self.state.problem = str(e)
            return self.state
        await self._keep_line(users)
        servers, problems = gpu_servers(users, containers)
        for p in problems:
            self.log.warning("%s", p)
        # Every server at once: a slow server (or a slow stop) never delays the others, nor
        # shortens the warning another one gets.
        await asyncio.gather(*(self._look_at(s) for s in servers))
        now = self.clock()
        if self.usage is not None:
            await self.usage.after_look(servers, now)
            await self._send_usage(servers, now)
        current = {s.key for s in servers}
        for key in set(self.watches) - current:
            del self.watches[key]
        # The per-server tokens of servers gone since the last look are revoked.
        await self.client.forget_servers_except({(s.user, s.name) for s in servers})
        self.live = {k: v for k, v in self.live.items() if k in current}
        self.unreadable = {k: v for k, v in self.unreadable.items() if k in current}
        rows = fleet_rows(servers, self.inventory, self.live, self.watches, now, self.unreadable)
        self.state = FleetState(
            rows=rows,
            summary=summarise(rows, servers, self.inventory),
            servers=servers,
            looked_at=now,
        )
        self._write_snapshot()
        return self.state

    async def _keep_line(self, users: list[dict]) -> None:
        """Start again the places in the GPU line whose start the hub lost (a restart), and
        give up those whose server runs (`line_keeper`)."""
        if self.line is None or not self.line.path.exists():
            return
        try:
            line = await asyncio.to_thread(self.line.load)
            seen = await asyncio.to_thread(self.line.last_seen)
            servers = {u["name"]: u.get("servers") or {} for u in users}
            actions = line_actions(line.waiters, seen, servers, self.clock())
            for w in actions.drop:
                await asyncio.to_thread(self.line.leave, w.user)
                self.log.info("%s runs the server it waited for: its place is given up", w.user)
            for w in actions.restart:
                self.log.info("Starting %s's wait for a GPU again (the hub restarted)", w.user)
                await self.line_restart(w)
        except Exception as e:  # the line is kept: the next look tries again
            self.log.warning("Could not keep the GPU line: %s", e)

    async def line_restart(self, waiter) -> None:
        try:
            await self.client.start_server(waiter.user, waiter.options, server_name(waiter))
        except HubApiError as e:
            self.log.warning("Could not start %s's wait again: %s", waiter.user, e)

    async def _send_usage(self, servers: list[GpuServer], now: float) -> None:
        """Each GPU server's owner sees their GPU-hours in the panel (sent when changed)."""
        changed = await self.usage.owners_figures(servers, now)
        by_key = {s.key: s for s in servers}

        async def send(key: str, figures: dict) -> None:
            if await self.client.send_usage(by_key[key], figures):
                self.usage.sent(key, figures)

        await asyncio.gather(*(send(k, f) for k, f in changed.items()))
        # The admin's opt-in (GpuUsage.stop_over_budget): servers over a hard budget stop.
        for key, sentence in self.usage.over.items():
            server = by_key[key]
            await self.usage.stopping_over_budget(key)
            try:
                await self.client.stop_server(server.user, server.name)
            except HubApiError as e:
                self.log.warning("Could not stop %s over its GPU budget: %s", key, e)
                continue
            self.log.info(
                "GPU budget: stopped %s (%s)",
                key,
                sentence,
                extra={"user": server.user, "server": key, "event": "gpu_budget_stop"},
            )

    async def _look_at(self, server: GpuServer) -> None:
        status = await self.client.gpu_status(server)
        await self._consider(server, status, self.clock())

    async def _consider(self, server: GpuServer, status: Any, now: float) -> None:
        """One server's answer (parsed, untrusted; None: it did not answer) -> its watch, the
        warning or stop it calls for, and its figures for the table."""
        figures = read_status(status, now)
        live = [asdict(g) for g in figures.gpus]
        self.live[server.key] = live
        self._note_readable(server, figures)
        look = Look(
            at=now,
            utilisation=busiest(live) if figures.readable else None,
            kept_at=figures.kept_at,
        )
        policy, reclaim = policy_for(
            self.settings.policies,
            server.profile,
            server.user,
            server.groups,
            self.settings.exempt_users,
            self.settings.exempt_groups,
        )
        before = self.watches.get(server.key, Watch())
        watch, action = decide(before, look, policy, reclaim and self.settings.enabled)
        if self.usage is not None:  # idle time for the GPU-hours record, by the threshold
            self.usage.idle[server.key] = (
                look.utilisation is not None and look.utilisation < policy.threshold
            )
        self.watches[server.key] = watch
        fields = {
            "user": server.user,
            "server": server.key,
            "profile": server.profile,
            "gpus": list(server.gpu_ids),
        }
        if action == "warn":
            idle = watch.idle_seconds(now)
            sent = await self.client.warn(server, watch.stop_at, idle, policy.sentence(idle))
            if not sent:
                # Nobody is stopped without having been told: warn again at the next look.
                self.watches[server.key] = replace(watch, stop_at=None)
                self.log.warning("Idle GPUs: %s did not take the warning", server.key)
                return
            self.log.info(
                "Idle GPUs: %s warned, stops at %s",
                server.key,
                time.strftime("%H:%M:%S", time.gmtime(watch.stop_at)),
                extra={**fields, "event": "gpu_idle_warning", "stop_at": watch.stop_at},
            )
        elif action == "clear":
            await self.client.clear_warning(server)
            self.log.info(
                "Idle GPUs: %s is active again (or exempt), warning withdrawn",
                server.key,
                extra={**fields, "event": "gpu_idle_cleared"},
            )
        elif action == "stop":
            if self.usage is not None:
                await self.usage.reclaiming(server.key)
            try:
                await self.client.stop_server(server.user, server.name)
            except HubApiError as e:
                self.log.warning("Idle GPUs: could not stop %s: %s", server.key, e)
                return
            self.reclaimed[server.profile] += len(server.gpu_ids)
            self.log.info(
                "Idle GPUs: stopped %s after %s idle, %d GPU(s) free again",
                server.key,
                round(watch.idle_seconds(now)),
                len(server.gpu_ids),
                extra={**fields, "event": "gpu_reclaimed"},
            )
            del self.watches[server.key]

    def _note_readable(self, server: GpuServer, figures: ServerFigures) -> None:
        """Remember (for the page) which servers' answers are unreadable; log the change
        only, so a server that keeps sending garbage cannot flood the log."""
        if figures.readable:
            if self.unreadable.pop(server.key, None) is not None:
                self.log.info("GPU figures of %s are readable again", server.key)
            return
        if server.key not in self.unreadable:
            self.log.warning(
                "GPU figures of %s are unreadable: %r",
                server.key,
                figures.problem,
                extra={"user": server.user, "server": server.key, "event": "gpu_unreadable"},
            )
        self.unreadable[server.key] = figures.problem

    def _write_snapshot(self) -> None:
        """The figures the hub's `/hub/metrics` exports, replaced atomically."""
        if self.snapshot_path is None:
            return
        data = {
            "version": SNAPSHOT_VERSION,
            "written_at": self.state.looked_at,
            "interval": self.settings.interval,
            **asdict(self.state.summary),
            "reclaimed_by_profile": dict(self.reclaimed),
            # When each warned server is stopped: the GPU line's estimate names it.
            "reclaim_at": {k: w.stop_at for k, w in self.watches.items() if w.stop_at},
            # The GPU-hours record's counters (issue 26), when the record is on.
            "usage": self.usage.figures if self.usage is not None else {},
        }
        fd, tmp = tempfile.mkstemp(dir=self.snapshot_path.parent, prefix=".fleet-")
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.snapshot_path)

    async def run_forever(self) -> None:
        while True:
            started = time.monotonic()
            await self.look()
            await asyncio.sleep(max(0.0, self.settings.interval - (time.monotonic() - started)))

    async def stop_server(self, user: str, server_name: str) -> None:
        """An admin's stop from the page: its GPUs show as free at once, not at the next look."""
        await self.client.stop_server(user, server_name)
        key = f"{user}/{server_name}" if server_name else user
        self.watches.pop(key, None)
        freed = [GpuRow(gpu=r.gpu, index=r.index, model=r.model) for r in self.state.rows
                 if r.server == key and self.inventory is not None]  # fmt: skip
        kept = [r for r in self.state.rows if r.server != key]
        self.state.rows = sorted(kept + freed, key=lambda r: (r.index is None, r.index or 0, r.gpu))


def settings_from_document(document: dict[str, Any]) -> ReclaimSettings:
    from .gpu_reclaim import parse_policies

    r = document.get("reclaim") or {}
    return ReclaimSettings(
        enabled=bool(r.get("enabled", True)),
        policies=parse_policies(r.get("policies") or {}),
        exempt_users=tuple(r.get("exempt_users") or ()),
        exempt_groups=tuple(r.get("exempt_groups") or ()),
        interval=float(r.get("interval", 30.0)),
    )
