"""The line for busy GPUs on the Docker edge: a start that finds its GPUs taken waits.

A mixin of CUDADockerSpawner. A GPU start whose user asked to wait (`"wait": true`, the
form's "Wait for a GPU" box) takes a place in the line (`gpu.line_store`, in the hub's data
directory) instead of a refusal, and waits inside its own start, so JupyterHub's spawn
page shows the place, the GPUs free and held, and an estimate as progress; when its turn
comes and its GPUs are free, the start goes on by itself, exactly as if the user had
pressed Start then. Leaving the line is stopping that pending server (the page's or the
API's stop); an admin may remove a place or move it to the front in the file. A start
that did not ask to wait never takes GPUs ahead of those waiting. A waiting start marks
its place alive every look; when the hub restarts, the operations service starts again
the places no start looks after any more (`services.line_keeper`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Protocol

from ..engine import failures
from ..gpu.allocator import Gpu, GpuQuotaExceeded, GpuUnavailable, plural
from ..gpu.host import GpuHost
from ..gpu.line_store import LineStore
from ..gpu.waiting_line import HeldGpu, Waiter, WaitingLine, estimate
from ..planning.choice import Choice
from ..services.hub_metrics import fleet_figures, record_line, record_line_start, record_refusal

# One Docker host: every GPU profile draws on the same GPUs, so one line serves them all.
POOL = "host"
LOOK_EVERY = 1.0  # seconds between two looks at the free GPUs while waiting
# JupyterHub's pending page with the place in the tab's title and a browser notification
# when the server is ready (jupyterhub_config.py puts it on the hub's template paths).
LINE_TEMPLATES = Path(__file__).parent / "templates"


class LinePool(Protocol):
    """The GPUs a line waits for, as each engine sees them (Docker: this host's table;
    Swarm: the nodes a profile may use)."""

    name: str  # the line's pool: who waits for the same GPUs
    total: int
    recent_holds: Iterable[float]

    async def free(self) -> int:
        """GPUs a start could take now."""

    async def take(self, choice: Choice) -> tuple[Gpu, ...] | None:
        """This start's GPUs, reserved now; None when they went in the meantime."""

    def held(self, reclaim_at: Mapping[str, float] | None) -> list[HeldGpu]:
        """The held GPUs, with what is known of when each frees."""


class HostPool:
    """This Docker host's GPUs (`gpu.host.GpuHost`): one pool for every profile."""

    name = POOL

    def __init__(self, host: GpuHost, spawner: WaitsInLine) -> None:
        self.host, self.spawner = host, spawner
        self.total = host.total
        self.recent_holds = host.recent_holds

    async def free(self) -> int:
        return await self.host.free_count(self.spawner._engine) or 0

    async def take(self, choice: Choice) -> tuple[Gpu, ...] | None:
        s = self.spawner
        try:
            return await self.host.reserve(
                s.server_key, s.user.name, s._group_names(), choice.gpus, s._engine
            )
        except GpuUnavailable:
            return None  # taken in the meantime (an outside container): look again

    def held(self, reclaim_at: Mapping[str, float] | None) -> list[HeldGpu]:
        return self.host.held_gpus(reclaim_at)


class WaitsInLine:
    """Reserve a start's GPUs through the line: `_line_reserve`, `_wait_in_line`."""

    _normal_start_timeout: float | None = None
    _in_line = False  # this process's start of this server waits in line (or did, until stopped)

    def _allow_waiting(self, choice: Choice) -> None:
        """A start that may wait in line may take that long (JupyterHub's start_timeout)."""
        if self._normal_start_timeout is None:
            self._normal_start_timeout = self.start_timeout
        extra = self.gpu_line_max_wait if (choice.wait and self.gpu_line) else 0
        self.start_timeout = self._normal_start_timeout + extra

    def _line(self) -> LineStore:
        return LineStore(Path(self.gpu_line_file))

    def _serving_order(self, figures: Mapping) -> dict:
        """The line's order arguments: with group shares set, the GPUs each group holds
        (`figures`: the operations service's last look) decide who goes first
        (`waiting_line.order`)."""
        if not self.gpu_line_group_shares:
            return {}
        held = figures.get("held_by_group") or {}
        return {"held_by_group": held, "shares": dict(self.gpu_line_group_shares)}

    async def _reserve_whole(self, choice: Choice, pool: HostPool) -> tuple[Gpu, ...]:
        """Whole GPUs now, through the line where it is on: a place in it when the choice
        may wait and they are busy; raises `GpuAllocationError` when refused."""
        host = pool.host
        if self.gpu_line and choice.wait:
            self._check_can_wait(choice, host)
        gpus = await self._line_reserve(choice, pool) if self.gpu_line else None
        if gpus is None:
            try:
                gpus = await host.reserve(
                    self.server_key, self.user.name, self._group_names(), choice.gpus,
                    self._engine,
                )  # fmt: skip
            except GpuUnavailable:
                if not (self.gpu_line and choice.wait):
                    raise
                gpus = await self._wait_in_line(choice, pool)
        return gpus

    async def _line_reserve(self, choice: Choice, pool: LinePool) -> tuple[Gpu, ...] | None:
        """GPUs when the line lets this start have them now; None when it must wait (or may
        not: a start that did not ask to wait is refused with a 409 saying why)."""
        store = self._line()
        if not store.path.exists():
            return None  # nobody ever waited here
        line = await asyncio.to_thread(store.load)
        ahead = [w for w in line.order(pool.name) if w.user != self.user.name]
        if not ahead:
            return None  # nobody waits: reserve as usual
        if not choice.wait:
            raise failures.user_error(
                409,
                f"{plural(len(ahead), 'user')} {'is' if len(ahead) == 1 else 'are'} waiting "
                "in line for GPUs; tick 'Wait for a GPU' to take your place after them, or "
                "pick the CPU profile.",
            )
        return await self._wait_in_line(choice, pool)

    def _check_can_wait(self, choice: Choice, host: GpuHost) -> None:
        """A wait that could never end is refused now: over the quota, or more GPUs than
        the host has (the quota still applies while waiting)."""
        if choice.gpus > host.total:
            raise failures.user_error(
                409, f"{plural(choice.gpus)} requested, and this host has {host.total}."
            )
        allocator = host.allocator
        limit = allocator.quota_for(self.user.name, self._group_names())
        held = allocator.held_by_user(self.user.name)
        mine = allocator.holdings().get(self.server_key)
        held -= len(mine.gpus) if mine else 0
        if limit is not None and held + choice.gpus > limit:
            e = GpuQuotaExceeded(choice.gpus, held, limit)
            record_refusal("gpu_quota", user=self.user.name, server=self.server_key, message=str(e))
            raise failures.user_error(409, str(e))

    async def _wait_in_line(self, choice: Choice, pool: LinePool) -> tuple[Gpu, ...]:
        """Wait in line until this start is first and its GPUs are free; then reserve them.
        (The caller checked that the wait can end: the quota, and the pool's size.)"""
        store = self._line()
        me = Waiter(
            self.user.name,
            self.server_key,
            pool.name,
            choice.gpus,
            time.time(),
            tuple(self._group_names()),
            dict(self.user_options or {}),
        )
        me = await asyncio.to_thread(store.join, me)
        self._in_line = True
        await self._count_line(store, pool.name)
        self.log.info(
            "%s joined the GPU line", me.user, extra={"event": "line_join", "user": me.user}
        )
        said = ""
        keep = False
        try:
            while True:
                line = await asyncio.to_thread(store.load)
                if line.place_of(me.user) is None:
                    raise failures.user_error(
                        409, "Your place in line for a GPU was removed; start again to wait."
                    )
                if time.time() - me.joined > self.gpu_line_max_wait:
                    raise failures.user_error(
                        409,
                        f"No GPU freed for you within {self.gpu_line_max_wait / 3600:g} h; "
                        "your place in line has expired. Try again later.",
                    )
                # Alive: a place whose start stopped looking (the hub went away) is started
                # again by the operations service after a restart.
                await asyncio.to_thread(store.touch, me.user, time.time())
                free = await pool.free()
                # The operations service's last look: a small file, read off the event loop.
                figures = await asyncio.to_thread(fleet_figures)
                order = self._serving_order(figures)
                head = line.next_to_start(pool.name, free, **order)
                if head is not None and head.user == me.user:
                    gpus = await pool.take(choice)
                    if gpus is not None:
                        record_line_start(time.time() - me.joined)
                        self.log.info(
                            "%s started from the GPU line",
                            me.user,
                            extra={"event": "line_start", "user": me.user,
                                   "waited": round(time.time() - me.joined, 1)},
                        )  # fmt: skip
                        return gpus
                message = self._line_message(line, me, free, pool, order, figures)
                if message != said:
                    self._progress.add(15, message)
                    said = message
                await asyncio.sleep(LOOK_EVERY)
        except (asyncio.CancelledError, GeneratorExit):
            # Cancelled: the hub is shutting down (the place stays for the restarted hub),
            # or the pending server is stopped, after which the place is given up
            # (`run_post_stop_hook`).
            keep = True
            raise
        finally:
            # Started, refused or expired: the place goes (a SQLite write, off the loop).
            if not keep:
                self._in_line = False
                await asyncio.to_thread(self._leave_line, pool.name)

    def _stopped_while_waiting(self) -> None:
        """The pending server of a start waiting in line was stopped: leaving the line.
        (Not a server the hub found stopped at its start: that place waits to be taken up
        again by the operations service.)"""
        if self._in_line:
            self._in_line = False
            self._leave_line()

    def _leave_line(self, pool: str | None = None) -> None:
        """Give this user's place in the line up, if they have one (a start that ended, or
        the pending server stopped: leaving the line)."""
        store = self._line()
        if not (self.gpu_line and store.path.exists()):
            return
        place = store.load().place_of(self.user.name)
        if place is not None and store.leave(self.user.name):
            self.log.info(
                "%s left the GPU line",
                self.user.name,
                extra={"event": "line_leave", "user": self.user.name},
            )
        # Counted again even when the place was gone already (an admin removed it).
        pool = place.pool if place is not None else pool
        if pool is not None:
            record_line(pool, len(store.load().order(pool)))

    @staticmethod
    async def _count_line(store: LineStore, pool: str) -> None:
        line = await asyncio.to_thread(store.load)
        record_line(pool, len(line.order(pool)))

    @staticmethod
    def _line_message(
        line: WaitingLine,
        me: Waiter,
        free: int,
        pool: LinePool,
        order: dict | None = None,
        figures: Mapping | None = None,
    ) -> str:
        order, figures = order or {}, figures or {}
        place = line.position(me.user, **order) or 1
        needed = sum(w.gpus for w in line.order(pool.name, **order)[:place]) - free
        # The idle reclaim's stop times (the operations service's last look) name when a
        # held GPU frees; without them, the pool's usual holding times.
        held = pool.held(figures.get("reclaim_at"))
        guess = estimate(max(1, needed), held, time.time(), pool.recent_holds)
        reason = guess.reason[:1].upper() + guess.reason[1:]
        return (
            f"Waiting for {plural(me.gpus)}: you are number {place} in line; "
            f"{free} of {pool.total} GPUs free, {pool.total - free} held. {reason}. "
            "You may close this page and keep your place; Stop Server leaves the line."
        )
