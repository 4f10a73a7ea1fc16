"""The admin's GPU list: whole GPUs and their MIG slices, checked (pure).

Each entry is an index (``0`` or ``"0"``), a UUID (``"GPU-5f1c..."``), or a dict
``{"id": ..., "index": ..., "name": ..., "compute_capability": ..., "mig": [...]}``.
A GPU in MIG mode lists its slices under ``"mig"``, each ``{"id": "MIG-...", "profile":
"1g.18gb", "memory_mib": 18176}``: the slices are allocatable units of their own (see
`allocator`), given to containers by their ``MIG-`` id.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from .allocator import Gpu

# Device ids Docker and the NVIDIA toolkit accept: an index, or a GPU / MIG UUID
# (old-style MIG UUIDs contain '/').
_INDEX = re.compile(r"^[0-9]+$")
_UUID = re.compile(r"^(GPU|MIG)-[0-9A-Za-z][0-9A-Za-z/_-]*$")
_MIG_UUID = re.compile(r"^MIG-[0-9A-Za-z][0-9A-Za-z/_-]*$")
_ENTRY_KEYS = {"id", "index", "name", "compute_capability", "mig"}
_SLICE_KEYS = {"id", "profile", "memory_mib"}
_CC = re.compile(r"\d{1,2}\.\d")
# NVIDIA's MIG profile names: "1g.10gb", "3g.71gb", "1g.18gb+me", "1c.3g.40gb".
MIG_PROFILE = re.compile(r"^(\d+c\.)?\d+g\.\d+gb(\+[a-z]+)?$")


def parse_inventory(entries: Iterable[object]) -> list[Gpu]:
    """GPUs (and their slices) from the admin's list, sorted by index; raises ValueError
    naming the bad entry."""
    if isinstance(entries, (str, bytes, Mapping)):
        raise ValueError(
            "The GPU inventory must be a list of GPU indices, UUIDs or "
            '{"id": ..., "index": ..., "name": ...} entries.'
        )
    units: list[Gpu] = []
    for position, entry in enumerate(entries):
        units.extend(_parse_entry(entry, position))
    whole = [g for g in units if not g.parent]
    for attr, among in (("id", units), ("index", whole)):
        seen: dict[object, Gpu] = {}
        for gpu in among:
            value = getattr(gpu, attr)
            if value in seen:
                raise ValueError(
                    f"GPU inventory entries {seen[value].id!r} and {gpu.id!r} have the same "
                    f"{attr} {value!r}; each GPU must appear once (give an explicit "
                    '"index" to UUID entries when mixing them with indices).'
                )
            seen[value] = gpu
    # Stable: each GPU's slices stay right after it, in the order listed.
    return sorted(units, key=lambda g: g.index)


def _parse_entry(entry: object, position: int) -> list[Gpu]:
    where = f"GPU inventory entry {position} ({entry!r})"
    if not isinstance(entry, Mapping):
        gpu_id, index = _parse_id(entry, where)
        return [Gpu(index=position if index is None else index, id=gpu_id)]
    unknown = set(entry) - _ENTRY_KEYS
    if unknown:
        raise ValueError(
            f"{where} has unknown keys {sorted(unknown)}; "
            "use id, index, name, compute_capability, mig."
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
    if gpu_id.startswith("MIG-"):
        raise ValueError(f"{where}: a MIG slice is listed under its GPU's 'mig', not alone.")
    if index is None:
        index = id_index if id_index is not None else position
    gpu = Gpu(index=index, id=gpu_id, name=name.strip(), compute_capability=cc)
    slices = entry.get("mig", [])
    if not isinstance(slices, list):
        raise ValueError(f"{where}: 'mig' must be a list of slices.")
    return [gpu, *(_parse_slice(s, gpu, f"{where}, slice {i}") for i, s in enumerate(slices))]


def _parse_slice(entry: object, gpu: Gpu, where: str) -> Gpu:
    if not isinstance(entry, Mapping) or set(entry) - _SLICE_KEYS or "id" not in entry:
        raise ValueError(
            f'{where} must be {{"id": "MIG-...", "profile": "1g.18gb", "memory_mib": ...}}.'
        )
    slice_id = str(entry["id"]).strip()
    if not _MIG_UUID.match(slice_id):
        raise ValueError(f"{where}: {slice_id!r} is not a MIG device UUID (MIG-...).")
    profile = str(entry.get("profile", "")).strip()
    if not MIG_PROFILE.match(profile):
        raise ValueError(f"{where}: {profile!r} is not a MIG profile name like 1g.18gb.")
    memory = entry.get("memory_mib", 0)
    if isinstance(memory, bool) or not isinstance(memory, int) or memory < 0:
        raise ValueError(f"{where}: 'memory_mib' must be a whole number of MiB.")
    return Gpu(
        index=gpu.index,
        id=slice_id,
        name=f"{gpu.name} MIG {profile}".strip(),
        compute_capability=gpu.compute_capability,
        parent=gpu.id,
        mig_profile=profile,
        memory_mib=memory,
    )


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
