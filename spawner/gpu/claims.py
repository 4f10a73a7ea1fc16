"""Which GPUs a container claims, read from its `docker inspect` output.

Pure. Any container on the engine may hold GPUs: this hub's, another hub's, an admin's
`docker run --gpus device=0 ...`. The engine says how each was asked for:

- device requests (`--gpus`, the NVIDIA Container Toolkit): `HostConfig.DeviceRequests`
  with the "gpu" capability: `DeviceIDs`, or `Count` (-1 is every GPU; n > 0 is the first
  n, which is what the toolkit gives);
- CDI names (`--device nvidia.com/gpu=0`, Docker 25+): a device request whose driver is
  "cdi", or a `HostConfig.Devices` entry;
- the nvidia runtime (`--runtime nvidia`, nvidia-docker2): `NVIDIA_VISIBLE_DEVICES` in the
  environment. Only then: CUDA images set `NVIDIA_VISIBLE_DEVICES=all` for every container,
  and under runc that gives no GPU at all.

References are GPU ids (UUIDs), indices, or "all"; `resolve` maps them onto the inventory.
GPUs used by processes outside Docker are not seen here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .allocator import Gpu

ALL = "all"
CDI_PREFIX = "nvidia.com/gpu="
_NO_DEVICES = {"", "none", "void"}


@dataclass(frozen=True)
class GpuClaim:
    """What one container claims: GPU references, and how it asked for them."""

    container: str  # its name, for people
    refs: tuple[str, ...]  # GPU ids or indices as the container gave them, or "all"
    how: str  # "device request", "CDI", "nvidia runtime"


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _device_request_refs(request: Mapping) -> tuple[list[str], str] | None:
    driver = (request.get("Driver") or "").lower()
    ids = [str(i) for i in request.get("DeviceIDs") or []]
    if driver == "cdi":
        refs = [i[len(CDI_PREFIX) :] for i in ids if i.startswith(CDI_PREFIX)]
        return (refs, "CDI") if refs else None
    capabilities = {c.lower() for group in request.get("Capabilities") or [] for c in group}
    if "gpu" not in capabilities and driver != "nvidia":
        return None
    if ids:
        return [r for i in ids for r in _split(i)], "device request"
    count = request.get("Count") or 0
    if count < 0:
        return [ALL], "device request"
    # The toolkit hands out the first `count` GPUs by index.
    return [str(i) for i in range(count)], "device request"


def container_claim(inspected: Mapping, default_runtime: str = "runc") -> GpuClaim | None:
    """The GPUs `inspected` (docker inspect of one container) claims, or None.

    `default_runtime` is the engine's (`docker info`'s DefaultRuntime): a container with no
    runtime of its own runs under it.
    """
    host = inspected.get("HostConfig") or {}
    config = inspected.get("Config") or {}
    name = (inspected.get("Name") or inspected.get("Id", "")[:12]).lstrip("/")
    refs: list[str] = []
    hows: list[str] = []
    for request in host.get("DeviceRequests") or []:
        found = _device_request_refs(request)
        if found:
            refs += found[0]
            hows.append(found[1])
    for device in host.get("Devices") or []:
        path = str(device.get("PathOnHost") or "")
        if path.startswith(CDI_PREFIX):
            refs.append(path[len(CDI_PREFIX) :])
            hows.append("CDI")
    runtime = host.get("Runtime") or default_runtime
    if runtime == "nvidia":
        env = [e for e in config.get("Env") or [] if isinstance(e, str) and "=" in e]
        visible = dict(e.split("=", 1) for e in env).get("NVIDIA_VISIBLE_DEVICES")
        if visible is not None and visible.strip().lower() not in _NO_DEVICES:
            refs += _split(visible)
            hows.append("nvidia runtime")
    if not refs:
        return None
    unique = tuple(dict.fromkeys(refs))
    return GpuClaim(container=name, refs=unique, how=", ".join(dict.fromkeys(hows)))


def resolve(refs: Iterable[str], inventory: Sequence[Gpu]) -> tuple[tuple[Gpu, ...], list[str]]:
    """(the inventory's GPUs the references name, the references that name none).

    A reference is a GPU id as the inventory lists it, an index, or "all".
    """
    by_id = {g.id: g for g in inventory}
    # An index names a whole GPU (its MIG slices share it).
    by_index = {str(g.index): g for g in inventory if not g.parent}
    found: dict[str, Gpu] = {}
    unknown: list[str] = []
    for ref in refs:
        if ref.lower() == ALL:
            found.update((g.id, g) for g in inventory)
        elif ref in by_id:
            found[ref] = by_id[ref]
        elif ref in by_index:
            found[by_index[ref].id] = by_index[ref]
        else:
            unknown.append(ref)
    return tuple(sorted(found.values(), key=lambda g: g.index)), unknown
