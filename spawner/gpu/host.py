"""The hub-wide GPU table of one Docker host: inventory, allocator, and its rebuild.

One instance per hub process, shared by every server. The allocator (pure, in `gpus`)
decides; this module does the I/O around it: reading the inventory once, and rebuilding
the table from the labels of the running containers before the first reservation after a
hub (re)start, so GPUs held by servers that outlived the hub are never handed out twice.
It takes data (a user, a server key, a container lister) and never a spawner.

GPU truth comes from the engine: before each reservation, GPUs claimed by running
containers this hub did not start (other hubs', an admin's `docker run --gpus ...`) count
as taken (`OutsideGpus`). The container list is one call; only containers not seen before
are inspected, so the cost stays flat however many run.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Iterable, Mapping

from ..engine.hub_identity import is_ours
from .allocator import Gpu, GpuAllocator
from .claims import GpuClaim, container_claim, resolve
from .engine_view import ContainerLister, EngineReads, EventReader, Inspector
from .inventory import read_host
from .labels import ACTIVE_STATES, GPUS_LABEL, holding_from_labels
from .waiting_line import HeldGpu

# Event actions after which a container runs / no longer holds anything.
_STARTED = {"start", "restart", "unpause"}
_GONE = {"die", "destroy", "stop", "kill", "oom"}
RELIST_S = 30.0  # a full list at least this often, whatever the events said
EVENT_OVERLAP_S = 1.0  # re-read this much of the last window: replaying events in order is safe


class OutsideGpus:
    """GPUs held by running containers that are not this hub's, cached per container id.

    A container's GPU claim never changes after it is created, so each container is
    inspected once; the cache forgets containers that no longer run. With an event reader,
    which containers run is kept up to date from the engine's events (one cheap call that
    returns what started or died since the last look) instead of listing every container
    each time; a full list is still made every `RELIST_S` seconds.
    """

    def __init__(self, hub_id: str, log: logging.Logger) -> None:
        self.hub_id = hub_id
        self.log = log
        self.inspections = 0  # how many containers were inspected (benchmarks, tests)
        self._claims: dict[str, GpuClaim | None] = {}
        self._default_runtime: str | None = None
        self._running: dict[str, dict] | None = None  # id -> labels, from list + events
        self._listed_at = 0.0
        self._events_since = 0.0
        self.lists = 0  # how many full lists were made (benchmarks, tests)

    def is_mine(self, labels: dict) -> bool:
        """This hub's container (without a hub id: any container with cudaspawner's GPU label)."""
        return is_ours(labels, self.hub_id) if self.hub_id else GPUS_LABEL in labels

    async def held(self, engine: EngineReads, inventory: list[Gpu]) -> dict[str, str]:
        """gpu id -> the name of the outside container holding it, as the engine says now."""
        inspect = engine.inspect
        if inspect is None:  # cannot tell what outside containers hold: assume nothing
            return {}
        if self._default_runtime is None:
            info = (await engine.info()) if engine.info else {}
            self._default_runtime = info.get("DefaultRuntime") or ""
        running = await self._running_now(engine.containers, engine.events)
        others = [
            {"Id": i, "Labels": labels}
            for i, labels in running.items()
            if not self.is_mine(labels or {})
        ]
        new = [c["Id"] for c in others if c["Id"] not in self._claims]
        if new:
            found = await asyncio.gather(*(self._claim(inspect, i) for i in new))
            self._claims.update(
                (i, claim) for i, claim in zip(new, found, strict=True) if claim != "retry"
            )
        alive = {c["Id"] for c in others}
        self._claims = {i: claim for i, claim in self._claims.items() if i in alive}
        held: dict[str, str] = {}
        for claim in self._claims.values():
            if claim is None:
                continue
            gpus, _unknown = resolve(claim.refs, inventory)
            for g in gpus:
                held.setdefault(g.id, claim.container)
        return held

    async def _running_now(
        self, containers: ContainerLister, events: EventReader | None
    ) -> dict[str, dict]:
        """Running containers (id -> labels): the last list moved forward by the events."""
        now = time.time()
        if events is None or self._running is None or now - self._listed_at > RELIST_S:
            listed = await containers({"status": list(ACTIVE_STATES)})
            self.lists += 1
            self._running = {c["Id"]: c.get("Labels") or {} for c in listed}
            self._listed_at = now
            self._events_since = now - EVENT_OVERLAP_S
            return self._running
        try:
            happened = await events(self._events_since, now)
        except Exception as e:
            self.log.warning("Could not read the engine's events, listing instead: %s", e)
            self._running = None
            return await self._running_now(containers, events)
        for event in happened:
            actor = event.get("Actor") or {}
            cid = actor.get("ID") or event.get("id") or ""
            action = event.get("Action") or event.get("status") or ""
            if not cid:
                continue
            if action in _STARTED:
                # An event's attributes carry the container's labels (and name, image).
                self._running[cid] = dict(actor.get("Attributes") or {})
            elif action in _GONE:
                self._running.pop(cid, None)
        self._events_since = now - EVENT_OVERLAP_S
        return self._running

    async def _claim(self, inspect: Inspector, container_id: str) -> GpuClaim | None | str:
        self.inspections += 1
        try:
            inspected = await inspect(container_id)
        except Exception as e:
            if getattr(e, "status_code", None) == 404:
                return None  # gone between the list and the inspect: holds nothing
            self.log.warning("Could not inspect container %s: %s", container_id[:12], e)
            return "retry"
        return container_claim(inspected, self._default_runtime or "runc")


class GpuHost:
    _instance: GpuHost | None = None

    def __init__(
        self,
        inventory: list[Gpu],
        allocator: GpuAllocator,
        log: logging.Logger,
        hub_id: str = "",
    ) -> None:
        self.inventory = inventory
        self.allocator = allocator
        self.log = log
        self._rebuilt = False
        self.outside = OutsideGpus(hub_id, log)
        # For the line's estimate: when each server was given its GPUs (by this process),
        # and how long the last servers held theirs.
        self.since: dict[str, float] = {}
        self.recent_holds: deque[float] = deque(maxlen=50)
        # The NVIDIA driver, for images that say which they need ("" unknown: not checked).
        self.driver = ""

    @classmethod
    async def shared(
        cls,
        inventory: object,
        *,
        placement: str = "pack",
        user_quota: int | None = None,
        group_quotas: dict | None = None,
        log: logging.Logger | None = None,
        hub_id: str = "",
    ) -> GpuHost:
        """The hub's GpuHost, made from the site's settings on first use.

        Reading the inventory may call NVML (slow on a big host): it runs in a thread, never
        on the hub's event loop.
        """
        log = log or logging.getLogger(__name__)
        if cls._instance is None:
            gpus, driver = await asyncio.to_thread(read_host, inventory, log)
            if cls._instance is None:  # another spawn may have finished first
                allocator = GpuAllocator(
                    gpus,
                    policy=placement,
                    user_quota=user_quota,
                    group_quotas=dict(group_quotas or {}),
                    log=log,
                )
                cls._instance = cls(gpus, allocator, log, hub_id)
                cls._instance.driver = driver
                log.info(
                    "GPU inventory: %s",
                    ", ".join(f"{g.id} ({g.name})" for g in gpus) or "none (CPU only)",
                )
        return cls._instance

    @classmethod
    def release_for(cls, server_key: str) -> None:
        """Free what a server holds. Before the first spawn of this hub process there is no
        table yet, hence nothing to free: it is built from the running containers later."""
        if cls._instance is not None:
            cls._instance.allocator.release(server_key)
            since = cls._instance.since.pop(server_key, None)
            if since is not None:
                cls._instance.recent_holds.append(time.time() - since)

    def held_gpus(self, reclaim_at: Mapping[str, float] | None = None) -> list[HeldGpu]:
        """Every GPU servers of this hub hold, with when it was given where known, and when
        the idle reclaim stops its server (`reclaim_at`: server key -> time) where warned."""
        deadlines = reclaim_at or {}
        return [
            HeldGpu(since=self.since.get(h.server), reclaim_at=deadlines.get(h.server))
            for h in self.allocator.holdings().values()
            for _ in h.gpus
        ]

    @classmethod
    def current_slices(cls) -> dict[str, tuple[int, int]]:
        """This process's table's MIG figures ({} before the table is made)."""
        return cls._instance.slice_figures() if cls._instance is not None else {}

    @classmethod
    def reset(cls) -> None:
        """Forget the table (tests; a hub restart does this by being a new process)."""
        cls._instance = None

    @property
    def total(self) -> int:
        """Whole GPUs (MIG slices are counted per profile: `slice_figures`)."""
        return self.allocator.total

    def slice_figures(self) -> dict[str, tuple[int, int]]:
        """MIG profile -> (slices free now, slices on the host), as last rebuilt."""
        return {
            profile: (self.allocator.free_slices(profile), total)
            for profile, total in self.allocator.mig_profiles().items()
        }

    async def _ensure_rebuilt(self, containers: ContainerLister) -> None:
        """Rebuild the table from running containers once per hub process (under the lock)."""
        if self._rebuilt or not self.inventory:
            self._rebuilt = True
            return
        # Paused and restarting containers still hold their GPUs.
        found = await containers({"label": GPUS_LABEL, "status": list(ACTIVE_STATES)})
        for c in found:
            if not self.outside.is_mine(c.get("Labels") or {}):
                continue  # another hub's: counted from the engine as held outside this hub
            holding = holding_from_labels(c.get("Labels") or {}, self.log, c["Id"][:12])
            if holding is not None:
                self.allocator.restore(holding.server, holding.user, holding.gpu_ids)
        self._rebuilt = True
        self.log.info("GPU table rebuilt from %d running containers", len(found))

    async def _see_outside(self, engine: EngineReads) -> None:
        """Mark the GPUs that containers this hub did not start hold (under the lock)."""
        if engine.inspect is None or not self.inventory:
            return
        held = await self.outside.held(engine, self.inventory)
        before = self.allocator.outside()
        if held != before:
            for gpu_id, name in held.items():
                if before.get(gpu_id) != name:
                    self.log.info("GPU %s is held outside the hub by container %s", gpu_id, name)
            for gpu_id in before.keys() - held.keys():
                self.log.info("GPU %s is no longer held outside the hub", gpu_id)
        self.allocator.set_outside(held)

    async def free_count(self, engine: EngineReads) -> int | None:
        """GPUs free right now (the table rebuilt first when needed); None when unknown.

        The spawn form must still open when the engine cannot be asked (it may be back by
        the time the user clicks Start): free counts are then unknown rather than wrong.
        """
        try:
            async with self.allocator.lock:
                await self._ensure_rebuilt(engine.containers)
                await self._see_outside(engine)
                return self.allocator.free_count()
        except Exception as e:
            self.log.warning("Could not read GPU assignments: %s", e)
            return None

    async def reserve(
        self,
        server_key: str,
        user: str,
        groups: Iterable[str],
        count: int,
        engine: EngineReads,
        mig: str = "",
    ) -> tuple[Gpu, ...]:
        """GPUs (or MIG slices of profile `mig`) for one server; raises
        `gpus.GpuAllocationError` with a sentence for the user.

        With `engine.inspect`, GPUs held by running containers this hub did not start are taken.
        """
        async with self.allocator.lock:
            await self._ensure_rebuilt(engine.containers)
            await self._see_outside(engine)
            gpus = self.allocator.reserve(server_key, user, list(groups), count, mig)
            if gpus:
                self.since[server_key] = time.time()
            return gpus
