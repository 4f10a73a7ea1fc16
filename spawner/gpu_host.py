"""The hub-wide GPU table of one Docker host: inventory, allocator, and its rebuild.

One instance per hub process, shared by every server. The allocator (pure, in `gpus`)
decides; this module does the I/O around it: reading the inventory once, and rebuilding
the table from the labels of the running containers before the first reservation after a
hub (re)start, so GPUs held by servers that outlived the hub are never handed out twice.
It takes data (a user, a server key, a container lister) and never a spawner.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable

from .gpu_inventory import load_inventory
from .gpus import Gpu, GpuAllocator
from .labels import GPUS_LABEL, holding_from_labels

# Lists containers for a docker-py style `filters` dict (the spawner's off-loop Docker call).
ContainerLister = Callable[[dict], Awaitable[list[dict]]]


class GpuHost:
    _instance: GpuHost | None = None

    def __init__(self, inventory: list[Gpu], allocator: GpuAllocator, log: logging.Logger) -> None:
        self.inventory = inventory
        self.allocator = allocator
        self.log = log
        self._rebuilt = False

    @classmethod
    async def shared(
        cls,
        inventory: object,
        *,
        placement: str = "pack",
        user_quota: int | None = None,
        group_quotas: dict | None = None,
        log: logging.Logger | None = None,
    ) -> GpuHost:
        """The hub's GpuHost, made from the site's settings on first use.

        Reading the inventory may call NVML (slow on a big host): it runs in a thread, never
        on the hub's event loop.
        """
        log = log or logging.getLogger(__name__)
        if cls._instance is None:
            gpus = await asyncio.to_thread(load_inventory, inventory, log)
            if cls._instance is None:  # another spawn may have finished first
                allocator = GpuAllocator(
                    gpus,
                    policy=placement,
                    user_quota=user_quota,
                    group_quotas=dict(group_quotas or {}),
                    log=log,
                )
                cls._instance = cls(gpus, allocator, log)
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

    @classmethod
    def reset(cls) -> None:
        """Forget the table (tests; a hub restart does this by being a new process)."""
        cls._instance = None

    @property
    def total(self) -> int:
        return len(self.inventory)

    async def _ensure_rebuilt(self, containers: ContainerLister) -> None:
        """Rebuild the table from running containers once per hub process (under the lock)."""
        if self._rebuilt or not self.inventory:
            self._rebuilt = True
            return
        # Paused and restarting containers still hold their GPUs.
        found = await containers(
            {"label": GPUS_LABEL, "status": ["running", "paused", "restarting"]}
        )
        for c in found:
            holding = holding_from_labels(c.get("Labels") or {}, self.log, c["Id"][:12])
            if holding is not None:
                self.allocator.restore(holding.server, holding.user, holding.gpu_ids)
        self._rebuilt = True
        self.log.info("GPU table rebuilt from %d running containers", len(found))

    async def free_count(self, containers: ContainerLister) -> int | None:
        """GPUs free right now (the table rebuilt first when needed); None when unknown.

        The spawn form must still open when the engine cannot be asked (it may be back by
        the time the user clicks Start): free counts are then unknown rather than wrong.
        """
        try:
            async with self.allocator.lock:
                await self._ensure_rebuilt(containers)
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
        containers: ContainerLister,
    ) -> tuple[Gpu, ...]:
        """GPUs for one server; raises `gpus.GpuAllocationError` with a sentence for the user."""
        async with self.allocator.lock:
            await self._ensure_rebuilt(containers)
            return self.allocator.reserve(server_key, user, list(groups), count)
