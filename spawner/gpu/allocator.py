"""The GPUs of one Docker host and who holds them: inventory model and allocator.

Pure: no Docker, no NVML, no clock. The allocator is the only place that decides which
GPUs a server gets. Its rules, in the order they are applied by `GpuAllocator.reserve`:

1. A count of 0 is always allowed: it returns no GPUs (and releases what the server held).
2. Re-reserving for a server that already holds GPUs *replaces* that holding: the old GPUs
   count as free for the new request, and are released only if the new request succeeds
   (a refused request changes nothing). A server has one container; a new start of it
   replaces the old container, so refusing would strand the user.
3. Quota: a user may hold at most their limit across all their servers. The limit is the
   most generous quota of the groups they belong to that have one (None = no limit);
   a user in no such group gets the per-user quota (None = no limit).
4. Availability: the request must fit in the free GPUs, or `GpuUnavailable` is raised.
   A MIG slice is a unit of its own, asked for by its profile ("1g.18gb"): it is free
   only while its GPU is not held whole, and a GPU only while none of its slices is held.
5. Placement picks which free GPUs: `pack` (best fit, see `_pick_pack`) or `spread`
   (rotate across the host, see `_pick_spread`); slices see `_pick_slices`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

PLACEMENT_POLICIES = ("pack", "spread")


@dataclass(frozen=True)
class Gpu:
    """One allocatable unit of the host: a whole GPU, or a MIG slice of one.

    `index` orders the GPUs for placement (the host's NVML/nvidia-smi index where known,
    else the position in the configured list; a slice has its GPU's); `id` is what Docker
    is given (an index, a GPU UUID or a MIG UUID) and what container labels record; `name`
    is the model, for people.
    """

    index: int
    id: str
    name: str = ""
    compute_capability: str = ""  # "9.0"; "" when not known (no check against images)
    parent: str = ""  # a MIG slice: the id of its GPU ("" for a whole GPU)
    mig_profile: str = ""  # a MIG slice: its profile, e.g. "1g.18gb"
    memory_mib: int = 0  # a MIG slice: its memory, where known

    @property
    def is_slice(self) -> bool:
        return bool(self.parent)


@dataclass(frozen=True)
class Holding:
    """The GPUs one server holds, and whose server it is."""

    server: str
    user: str
    gpus: tuple[Gpu, ...]


def plural(n: int, word: str = "GPU") -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def available(inventory: Iterable[Gpu], taken: Iterable[str]) -> list[Gpu]:
    """The units of `inventory` that may be given while the ids `taken` are held: a slice
    only while its GPU is not held whole, a GPU only while none of its slices is held."""
    inventory, taken = list(inventory), set(taken)
    split = {g.parent for g in inventory if g.parent and g.id in taken}
    return [
        g
        for g in inventory
        if g.id not in taken and (g.parent not in taken if g.parent else g.id not in split)
    ]


class GpuAllocationError(Exception):
    """A request the allocator refused; `str(e)` is a sentence for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class GpuUnavailable(GpuAllocationError):
    """Not enough free GPUs (or MIG slices of the profile asked for) on the host right now."""

    def __init__(self, requested: int, free: int, total: int, unit: str = "GPU") -> None:
        self.requested, self.free, self.total = requested, free, total
        if total == 0:
            message = (
                f"{plural(requested, unit)} requested, but this host has no {unit}s; "
                "pick the CPU profile."
            )
        elif free == 0:
            message = (
                f"{plural(requested, unit)} requested, 0 free of {total}; "
                "pick the CPU profile or try again later."
            )
        else:
            message = (
                f"{plural(requested, unit)} requested, {free} free of {total}; "
                "pick fewer or the CPU profile."
            )
        super().__init__(message)


class GpuQuotaExceeded(GpuAllocationError):
    """The user's quota does not allow this many GPUs at once."""

    def __init__(self, requested: int, held: int, limit: int) -> None:
        self.requested, self.held, self.limit = requested, held, limit
        if limit == 0:
            message = "You may not use GPUs on this hub; pick the CPU profile."
        elif held == 0:
            message = (
                f"You asked for {plural(requested)} and your limit is {limit}; "
                "pick fewer or the CPU profile."
            )
        elif held >= limit:
            message = (
                f"You already hold {plural(held)} and your limit is {limit}; "
                "stop a server or pick the CPU profile."
            )
        else:
            message = (
                f"You already hold {plural(held)} and your limit is {limit}, so you can have "
                f"{limit - held} more; stop a server, pick fewer, or pick the CPU profile."
            )
        super().__init__(message)


# --- the allocator ----------------------------------------------------------------------


class GpuAllocator:
    """Exclusive assignment of whole GPUs to servers, with quotas and a placement policy.

    Not thread-safe and not itself async: the spawner holds `lock` around "rebuild the
    table, then reserve", so two concurrent spawns can never be handed the same GPU.
    """

    def __init__(
        self,
        inventory: Sequence[Gpu],
        policy: str = "pack",
        user_quota: int | None = None,
        group_quotas: Mapping[str, int | None] | None = None,
        log: logging.Logger | None = None,
    ) -> None:
        if policy not in PLACEMENT_POLICIES:
            raise ValueError(f"Unknown GPU placement {policy!r}; use one of {PLACEMENT_POLICIES}.")
        ids = [g.id for g in inventory]
        if len(set(ids)) != len(ids):
            raise ValueError("The GPU inventory lists a GPU twice.")
        for name, quota in [("per-user", user_quota), *(group_quotas or {}).items()]:
            if quota is not None and (isinstance(quota, bool) or quota < 0):
                raise ValueError(f"GPU quota for {name!r} must be 0 or more, or None.")
        self.inventory: tuple[Gpu, ...] = tuple(sorted(inventory, key=lambda g: g.index))
        self.whole: tuple[Gpu, ...] = tuple(g for g in self.inventory if not g.parent)
        self._slices_of: dict[str, list[Gpu]] = {g.id: [] for g in self.whole}
        for g in self.inventory:
            if g.parent:
                if g.parent not in self._slices_of:
                    raise ValueError(f"MIG slice {g.id} names {g.parent}, not a GPU of the host.")
                self._slices_of[g.parent].append(g)
        self.policy = policy
        self.user_quota = user_quota
        self.group_quotas = dict(group_quotas or {})
        self.log = log or logging.getLogger(__name__)
        self.lock = asyncio.Lock()
        self._by_id = {g.id: g for g in self.inventory}
        self._holdings: dict[str, Holding] = {}
        self._owner: dict[str, str] = {}  # gpu id -> server key
        # gpu id -> who holds it outside this hub (a container's name), from the engine
        self._outside: dict[str, str] = {}
        self._cursor = 0  # spread: position in `inventory` where the next search starts

    # --- questions ---
    @property
    def total(self) -> int:
        """Whole GPUs on the host (MIG slices are counted per profile: `slice_total`)."""
        return len(self.whole)

    def holdings(self) -> dict[str, Holding]:
        """A copy of the table: server key -> Holding."""
        return dict(self._holdings)

    def _available(self, mine: frozenset[str] | set[str] = frozenset()) -> list[Gpu]:
        """Units that may be given now (held ones but `mine`, the asking server's own)."""
        taken = {i for i in self._owner if i not in mine} | self._outside.keys()
        return available(self.inventory, taken)

    def free(self) -> tuple[Gpu, ...]:
        """Whole GPUs free now."""
        return tuple(g for g in self._available() if not g.parent)

    def free_count(self) -> int:
        return len(self.free())

    def mig_profiles(self) -> dict[str, int]:
        """MIG profile -> how many slices of it the host has."""
        counts: dict[str, int] = {}
        for g in self.inventory:
            if g.mig_profile:
                counts[g.mig_profile] = counts.get(g.mig_profile, 0) + 1
        return counts

    def free_slices(self, profile: str) -> int:
        """Slices of a MIG profile free now (their GPU not held whole)."""
        return sum(1 for g in self._available() if g.mig_profile == profile)

    def outside(self) -> dict[str, str]:
        """GPUs held outside this hub: gpu id -> holder (a container name)."""
        return dict(self._outside)

    def set_outside(self, held: Mapping[str, str]) -> None:
        """Replace the set of GPUs that containers this hub did not start hold (engine truth).

        They are never handed out; ids the inventory does not know are ignored.
        """
        self._outside = {k: v for k, v in held.items() if k in self._by_id}

    def held_by_user(self, user: str) -> int:
        return sum(len(h.gpus) for h in self._holdings.values() if h.user == user)

    def quota_for(self, user: str, groups: Iterable[str] = ()) -> int | None:
        """Most GPUs `user` may hold at once (None: no limit); see the module docstring."""
        quotas = [self.group_quotas[g] for g in groups if g in self.group_quotas]
        if not quotas:
            return self.user_quota
        if any(q is None for q in quotas):
            return None
        return max(quotas)  # type: ignore[type-var]

    # --- changes ---
    def reserve(
        self, server_key: str, user: str, groups: Iterable[str], count: int, mig: str = ""
    ) -> tuple[Gpu, ...]:
        """Give `count` GPUs (or `count` MIG slices of profile `mig`) to `server_key`,
        replacing what it held, or raise.

        Raises GpuQuotaExceeded or GpuUnavailable and then changes nothing. A slice counts
        as one GPU against the user's quota.
        """
        if isinstance(count, bool) or count < 0:
            raise ValueError(f"GPU count must be 0 or more, not {count!r}.")
        if count == 0:
            self.release(server_key)
            return ()
        previous = self._holdings.get(server_key)
        mine = {g.id for g in previous.gpus} if previous else set()

        limit = self.quota_for(user, groups)
        held_elsewhere = self.held_by_user(user) - (
            len(previous.gpus) if previous and previous.user == user else 0
        )
        if limit is not None and held_elsewhere + count > limit:
            raise GpuQuotaExceeded(count, held_elsewhere, limit)

        candidates = [
            g for g in self._available(mine) if (g.mig_profile == mig if mig else not g.parent)
        ]
        if count > len(candidates):
            if mig:
                total = self.mig_profiles().get(mig, 0)
                raise GpuUnavailable(count, len(candidates), total, f"MIG {mig} slice")
            raise GpuUnavailable(count, len(candidates), self.total)

        if mig:
            chosen = self._pick_slices(candidates, count, mine)
        elif self.policy == "pack":
            chosen = _pick_pack(candidates, count)
        else:
            chosen = self._pick_spread(candidates, count)
        self.release(server_key)
        self._assign(server_key, user, chosen)
        return chosen

    def release(self, server_key: str) -> tuple[Gpu, ...]:
        """Free what `server_key` holds; returns those GPUs (none if it held none)."""
        holding = self._holdings.pop(server_key, None)
        if holding is None:
            return ()
        for g in holding.gpus:
            self._owner.pop(g.id, None)
        return holding.gpus

    def restore(self, server_key: str, user: str, gpu_ids: Iterable[str]) -> list[str]:
        """Record GPUs a running container already holds (rebuild after a hub restart).

        Never refuses for quota (the container exists), never double-assigns: ids not in
        the inventory are ignored, and a GPU already held by another server stays with
        that first holder. Returns (and logs) one sentence per id it could not restore.
        """
        problems: list[str] = []
        previous = self._holdings.get(server_key)
        accepted = list(previous.gpus) if previous else []
        for gpu_id in gpu_ids:
            gpu = self._by_id.get(gpu_id)
            if gpu is None:
                problems.append(
                    f"GPU {gpu_id!r} of server {server_key!r} is not in the inventory; ignored."
                )
                continue
            owner = self._owner.get(gpu_id)
            if owner == server_key:
                continue
            # A slice and its whole GPU are never held by two servers at once.
            related = [gpu.parent] if gpu.parent else [s.id for s in self._slices_of[gpu.id]]
            owner = owner or next(
                (o for r in related if (o := self._owner.get(r)) not in (None, server_key)), None
            )
            if owner is not None:
                problems.append(
                    f"GPU {gpu_id!r} is claimed by servers {owner!r} and {server_key!r}; "
                    f"it stays with {owner!r}."
                )
                continue
            accepted.append(gpu)
            self._owner[gpu_id] = server_key
        if accepted:
            gpus = tuple(sorted(accepted, key=lambda g: g.index))
            self._holdings[server_key] = Holding(server=server_key, user=user, gpus=gpus)
        for p in problems:
            self.log.warning("Restoring GPU assignments: %s", p)
        return problems

    def _assign(self, server_key: str, user: str, gpus: tuple[Gpu, ...]) -> None:
        self._holdings[server_key] = Holding(server=server_key, user=user, gpus=gpus)
        for g in gpus:
            self._owner[g.id] = server_key

    def _pick_spread(self, candidates: list[Gpu], count: int) -> tuple[Gpu, ...]:
        """Rotate: the next free GPUs at or after the cursor, wrapping around the host.

        Successive servers land on different GPUs even when earlier ones have stopped,
        so wear and heat spread across the host.
        """
        position = {g.id: i for i, g in enumerate(self.whole)}
        ordered = sorted(candidates, key=lambda g: (position[g.id] - self._cursor) % self.total)
        chosen = ordered[:count]
        self._cursor = (position[chosen[-1].id] + 1) % self.total
        return tuple(sorted(chosen, key=lambda g: g.index))

    def _pick_slices(self, candidates: list[Gpu], count: int, mine: set[str]) -> tuple[Gpu, ...]:
        """Slices on GPUs that already have slices held first (`pack`: whole GPUs stay
        whole for whole-GPU requests), or on the least used GPUs first (`spread`)."""
        held = {i for i in self._owner if i not in mine} | self._outside.keys()

        def used(g: Gpu) -> int:
            return sum(1 for s in self._slices_of[g.parent] if s.id in held)

        sign = -1 if self.policy == "pack" else 1
        order = {g.id: i for i, g in enumerate(self.inventory)}
        ranked = sorted(candidates, key=lambda g: (sign * used(g), g.index, order[g.id]))
        return tuple(ranked[:count])


def _pick_pack(candidates: list[Gpu], count: int) -> tuple[Gpu, ...]:
    """Best fit: the smallest run of adjacent free GPUs that fits (lowest index on ties).

    Filling the smallest holes first keeps the large contiguous blocks free for
    multi-GPU requests (adjacent indices usually share a PCIe switch or NVLink). When
    no run is long enough, the lowest free indices.
    """
    runs: list[list[Gpu]] = []
    for g in candidates:  # sorted by index
        if runs and runs[-1][-1].index + 1 == g.index:
            runs[-1].append(g)
        else:
            runs.append([g])
    fitting = [r for r in runs if len(r) >= count]
    if fitting:
        best = min(fitting, key=lambda r: (len(r), r[0].index))
        return tuple(best[:count])
    return tuple(candidates[:count])
