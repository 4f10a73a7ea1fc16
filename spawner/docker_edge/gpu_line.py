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
from pathlib import Path

from ..engine import failures
from ..gpu.allocator import Gpu, GpuQuotaExceeded, GpuUnavailable, plural
from ..gpu.host import GpuHost
from ..gpu.line_store import LineStore
from ..gpu.waiting_line import Waiter, WaitingLine, estimate
from ..planning.choice import Choice
from ..services.hub_metrics import fleet_figures, record_line, record_line_start, record_refusal

# One Docker host: every GPU profile draws on the same GPUs, so one line serves them all.
POOL = "host"
LOOK_EVERY = 1.0  # seconds between two looks at the free GPUs while waiting
# JupyterHub's pending page with the place in the tab's title and a browser notification
# when the server is ready (jupyterhub_config.py puts it on the hub's template paths).
LINE_TEMPLATES = Path(__file__).parent / "templates"


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

    def _serving_order(self) -> dict:
        """The line's order arguments: with group shares set, the GPUs each group holds
        (the operations service's last look) decide who goes first (`waiting_line.order`)."""
        if not self.gpu_line_group_shares:
            return {}
        held = fleet_figures().get("held_by_group") or {}
        return {"held_by_group": held, "shares": dict(self.gpu_line_group_shares)}

    async def _line_reserve(self, choice: Choice, host: GpuHost) -> tuple[Gpu, ...] | None:
        """GPUs when the line lets this start have them now; None when it must wait (or may
        not: a start that did not ask to wait is refused with a 409 saying why)."""
        line = await asyncio.to_thread(self._line().load)
        ahead = [w for w in line.order(POOL) if w.user != self.user.name]
        if not ahead:
            return None  # nobody waits: reserve as usual
        if not choice.wait:
            raise failures.user_error(
                409,
                f"{plural(len(ahead), 'user')} {'is' if len(ahead) == 1 else 'are'} waiting "
                "in line for GPUs; tick 'Wait for a GPU' to take your place after them, or "
                "pick the CPU profile.",
            )
        return await self._wait_in_line(choice, host)

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

    async def _wait_in_line(self, choice: Choice, host: GpuHost) -> tuple[Gpu, ...]:
        """Wait in line until this start is first and its GPUs are free; then reserve them."""
        self._check_can_wait(choice, host)
        store = self._line()
        me = Waiter(
            self.user.name,
            self.server_key,
            POOL,
            choice.gpus,
            time.time(),
            tuple(self._group_names()),
            dict(self.user_options or {}),
        )
        me = await asyncio.to_thread(store.join, me)
        self._in_line = True
        await self._count_line(store)
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
                free = await host.free_count(self._engine) or 0
                order = self._serving_order()
                head = line.next_to_start(POOL, free, **order)
                if head is not None and head.user == me.user:
                    gpus = await self._reserve_now(choice, host)
                    if gpus:
                        record_line_start(time.time() - me.joined)
                        self.log.info(
                            "%s started from the GPU line",
                            me.user,
                            extra={"event": "line_start", "user": me.user,
                                   "waited": round(time.time() - me.joined, 1)},
                        )  # fmt: skip
                        return gpus
                message = self._line_message(line, me, free, host, order)
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
            # Started, refused or expired: the place goes. (One short SQLite write.)
            if not keep:
                self._in_line = False
                self._leave_line()

    def _stopped_while_waiting(self) -> None:
        """The pending server of a start waiting in line was stopped: leaving the line.
        (Not a server the hub found stopped at its start: that place waits to be taken up
        again by the operations service.)"""
        if self._in_line:
            self._in_line = False
            self._leave_line()

    def _leave_line(self) -> None:
        """Give this user's place in the line up, if they have one (a start that ended, or
        the pending server stopped: leaving the line)."""
        store = self._line()
        if self.gpu_line and store.path.exists() and store.leave(self.user.name):
            self.log.info(
                "%s left the GPU line",
                self.user.name,
                extra={"event": "line_leave", "user": self.user.name},
            )
            record_line(POOL, len(store.load().order(POOL)))

    @staticmethod
    async def _count_line(store: LineStore) -> None:
        line = await asyncio.to_thread(store.load)
        record_line(POOL, len(line.order(POOL)))

    async def _reserve_now(self, choice: Choice, host: GpuHost) -> tuple[Gpu, ...]:
        try:
            return await host.reserve(
                self.server_key, self.user.name, self._group_names(), choice.gpus, self._engine
            )
        except GpuUnavailable:
            return ()  # taken in the meantime (an outside container): look again

    @staticmethod
    def _line_message(
        line: WaitingLine, me: Waiter, free: int, host: GpuHost, order: dict | None = None
    ) -> str:
        order = order or {}
        place = line.position(me.user, **order) or 1
        needed = sum(w.gpus for w in line.order(POOL, **order)[:place]) - free
        # The idle reclaim's stop times (the operations service's last look) name when a
        # held GPU frees; without them, the pool's usual holding times.
        held = host.held_gpus(fleet_figures().get("reclaim_at"))
        guess = estimate(max(1, needed), held, time.time(), host.recent_holds)
        reason = guess.reason[:1].upper() + guess.reason[1:]
        return (
            f"Waiting for {plural(me.gpus)}: you are number {place} in line; "
            f"{free} of {host.total} GPUs free, {host.total - free} held. {reason}. "
            "You may close this page and keep your place; Stop Server leaves the line."
        )
