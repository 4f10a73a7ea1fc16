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
5. Placement picks which free GPUs: `pack` (best fit, see `_pick_pack`) or `spread`
   (rotate across the host, see `_pick_spread`).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

PLACEMENT_POLICIES = ("pack", "spread")

# Device ids Docker and the NVIDIA toolkit accept: an index, or a GPU / MIG UUID
# (old-style MIG UUIDs contain '/').
_INDEX = re.compile(r"^[0-9]+$")
_UUID = re.compile(r"^(GPU|MIG)-[0-9A-Za-z][0-9A-Za-z/_-]*$")
_ENTRY_KEYS = {"id", "index", "name", "compute_capability"}
_CC = re.compile(r"\d{1,2}\.\d")


@dataclass(frozen=True)
class Gpu:
    """One whole GPU of the host.

    `index` orders the GPUs for placement (the host's NVML/nvidia-smi index where known,
    else the position in the configured list); `id` is what Docker is given (an index
    or a UUID) and what container labels record; `name` is the model, for people.
    """

    index: int
    id: str
    name: str = ""
    compute_capability: str = ""  # "9.0"; "" when not known (no check against images)


@dataclass(frozen=True)
class Holding:
    """The GPUs one server holds, and whose server it is."""

    server: str
    user: str
    gpus: tuple[Gpu, ...]


def plural(n: int, word: str = "GPU") -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class GpuAllocationError(Exception):
    """A request the allocator refused; `str(e)` is a sentence for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class GpuUnavailable(GpuAllocationError):
    """Not enough free GPUs on the host right now."""

    def __init__(self, requested: int, free: int, total: int) -> None:
        self.requested, self.free, self.total = requested, free, total
        if total == 0:
            message = (
                f"{plural(requested)} requested, but this host has no GPUs; pick the CPU profile."
            )
        elif free == 0:
            message = (
                f"{plural(requested)} requested, 0 free of {total}; "
                "pick the CPU profile or try again later."
            )
        else:
            message = (
                f"{plural(requested)} requested, {free} free of {total}; "
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


# --- inventory from configuration -------------------------------------------------------


def parse_inventory(entries: Iterable[object]) -> list[Gpu]:
    """GPUs from the admin's list, sorted by index; raises ValueError naming the bad entry.

    Each entry is an index (``0`` or ``"0"``), a UUID (``"GPU-5f1c..."``, index = its
    position in the list), or a dict ``{"id": ..., "index": ..., "name": ...}`` where
    `id` or `index` (or both) must be given and `name` is the model shown to people.
    """
    if isinstance(entries, (str, bytes, Mapping)):
        raise ValueError(
            "The GPU inventory must be a list of GPU indices, UUIDs or "
            '{"id": ..., "index": ..., "name": ...} entries.'
        )
    gpus = [_parse_entry(entry, position) for position, entry in enumerate(entries)]
    for attr in ("id", "index"):
        seen: dict[object, int] = {}
        for position, gpu in enumerate(gpus):
            value = getattr(gpu, attr)
            if value in seen:
                raise ValueError(
                    f"GPU inventory entries {seen[value]} and {position} have the same "
                    f"{attr} {value!r}; each GPU must appear once (give an explicit "
                    '"index" to UUID entries when mixing them with indices).'
                )
            seen[value] = position
    return sorted(gpus, key=lambda g: g.index)


def _parse_entry(entry: object, position: int) -> Gpu:
    where = f"GPU inventory entry {position} ({entry!r})"
    if isinstance(entry, Mapping):
        unknown = set(entry) - _ENTRY_KEYS
        if unknown:
            raise ValueError(
                f"{where} has unknown keys {sorted(unknown)}; "
                "use id, index, name, compute_capability."
            )
        if "id" not in entry and "index" not in entry:
            raise ValueError(f"{where} needs an 'id' (index or UUID) or an 'index'.")
        name = entry.get("name", "")
        if not isinstance(name, str):
            raise ValueError(f"{where}: 'name' must be a string.")
        cc = str(entry.get("compute_capability", "")).strip()
        if cc and not _CC.fullmatch(cc):
            raise ValueError(f"{where}: 'compute_capability' must look like \"9.0\".")
        index = _parse_index(entry["index"], where) if "index" in entry else None
        if "id" in entry:
            gpu_id, id_index = _parse_id(entry["id"], where)
        else:
            gpu_id, id_index = str(index), index
        if index is None:
            index = id_index if id_index is not None else position
        return Gpu(index=index, id=gpu_id, name=name.strip(), compute_capability=cc)
    gpu_id, index = _parse_id(entry, where)
    return Gpu(index=position if index is None else index, id=gpu_id)


def _parse_index(value: object, where: str) -> int:
    # bool is an int in Python; `True` in a GPU list is a mistake, not GPU 1.
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"{where}: an index must be a whole number like 0 or 1.")
    text = str(value).strip()
    if not _INDEX.match(text):
        raise ValueError(f"{where}: an index must be a whole number like 0 or 1.")
    return int(text)


def _parse_id(value: object, where: str) -> tuple[str, int | None]:
    """(the Docker device id, the index it implies or None)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"{where} is neither a GPU index (0, 1, ...) nor a UUID (GPU-...).")
    text = str(value).strip()
    if _INDEX.match(text):
        return str(int(text)), int(text)
    if _UUID.match(text):
        return text, None
    raise ValueError(f"{where} is neither a GPU index (0, 1, ...) nor a UUID (GPU-...).")


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
        return len(self.inventory)

    def holdings(self) -> dict[str, Holding]:
        """A copy of the table: server key -> Holding."""
        return dict(self._holdings)

    def free(self) -> tuple[Gpu, ...]:
        return tuple(g for g in self.inventory if g.id not in self._owner | self._outside.keys())

    def free_count(self) -> int:
        return len(self.free())

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
        self, server_key: str, user: str, groups: Iterable[str], count: int
    ) -> tuple[Gpu, ...]:
        """Give `count` GPUs to `server_key` (replacing what it held), or raise.

        Raises GpuQuotaExceeded or GpuUnavailable and then changes nothing.
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
            g
            for g in self.inventory
            if (g.id not in self._owner or g.id in mine) and g.id not in self._outside
        ]
        if count > len(candidates):
            raise GpuUnavailable(count, len(candidates), self.total)

        if self.policy == "pack":
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
        position = {g.id: i for i, g in enumerate(self.inventory)}
        ordered = sorted(candidates, key=lambda g: (position[g.id] - self._cursor) % self.total)
        chosen = ordered[:count]
        self._cursor = (position[chosen[-1].id] + 1) % self.total
        return tuple(sorted(chosen, key=lambda g: g.index))


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
