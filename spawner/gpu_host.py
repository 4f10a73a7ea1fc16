"""The hub-wide GPU table of one Docker host: inventory, allocator, and its rebuild.

One instance per hub process, shared by every spawner. The allocator (pure, in `gpus`)
decides; this module does the I/O around it: reading the inventory once, and rebuilding
the table from the labels of the running containers before the first reservation after a
hub (re)start, so GPUs held by servers that outlived the hub are never handed out twice.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from . import errors
from .gpu_inventory import load_inventory
from .gpus import Gpu, GpuAllocationError, GpuAllocator
from .labels import GPUS_LABEL, holding_from_labels

if TYPE_CHECKING:
    from .docker_spawner import CUDADockerSpawner


class GpuHost:
    _instance: GpuHost | None = None

    def __init__(self, inventory: list[Gpu], allocator: GpuAllocator, style: str) -> None:
        self.inventory = inventory
        self.allocator = allocator
        self.style = style
        self._rebuilt = False

    @classmethod
    async def for_spawner(cls, spawner: CUDADockerSpawner) -> GpuHost:
        """The hub's GpuHost, made from the spawner's configuration on first use.

        Reading the inventory may call NVML (slow on a big host): it runs in a thread, never
        on the hub's event loop.
        """
        if cls._instance is None:
            inventory = await asyncio.to_thread(load_inventory, spawner.gpu_inventory, spawner.log)
            if cls._instance is None:  # another spawn may have finished first
                allocator = GpuAllocator(
                    inventory,
                    policy=spawner.gpu_placement,
                    user_quota=spawner.gpu_quota_per_user,
                    group_quotas=dict(spawner.gpu_quota_per_group),
                    log=spawner.log,
                )
                cls._instance = cls(inventory, allocator, spawner.gpu_request_style)
                spawner.log.info(
                    "GPU inventory: %s",
                    ", ".join(f"{g.id} ({g.name})" for g in inventory) or "none (CPU only)",
                )
        return cls._instance

    @classmethod
    def release_for(cls, server_key: str) -> None:
        """Free what a server holds. Before the first spawn of this hub process there is no
        table yet, hence nothing to free: it is built from the running containers later."""
        if cls._instance is not None:
            cls._instance.release(server_key)

    @classmethod
    def reset(cls) -> None:
        """Forget the table (tests; a hub restart does this by being a new process)."""
        cls._instance = None

    @property
    def total(self) -> int:
        return len(self.inventory)

    async def ensure_rebuilt(self, spawner: CUDADockerSpawner) -> None:
        """Rebuild the table from running containers once per hub process (under the lock)."""
        if self._rebuilt or not self.inventory:
            self._rebuilt = True
            return
        # Paused and restarting containers still hold their GPUs.
        containers = await spawner.docker(
            "containers",
            filters={"label": GPUS_LABEL, "status": ["running", "paused", "restarting"]},
        )
        for c in containers:
            holding = holding_from_labels(c.get("Labels") or {}, spawner.log, c["Id"][:12])
            if holding is not None:
                self.allocator.restore(holding.server, holding.user, holding.gpu_ids)
        self._rebuilt = True
        spawner.log.info("GPU table rebuilt from %d running containers", len(containers))

    async def reserve(self, spawner: CUDADockerSpawner, count: int) -> tuple[Gpu, ...]:
        async with self.allocator.lock:
            await self.ensure_rebuilt(spawner)
            groups = [g.name for g in getattr(spawner.user, "groups", [])]
            try:
                return self.allocator.reserve(spawner.server_key, spawner.user.name, groups, count)
            except GpuAllocationError as e:
                raise errors.user_error(409, str(e)) from None

    def release(self, server_key: str) -> None:
        self.allocator.release(server_key)
