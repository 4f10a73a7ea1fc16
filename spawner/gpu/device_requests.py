"""How a container is given its GPUs, per request style, as plain data.

`gpu_environment` is what the start plan puts in the container's environment (any
runtime); `gpu_host_config` is the Docker edge: keyword arguments of docker-py's
`create_host_config`, which the Docker spawner merges into the container's host config.

Styles:

- ``device_requests`` (default): a Docker device request, as ``docker run --gpus`` makes
  (NVIDIA Container Toolkit).
- ``runtime``: ``runtime="nvidia"`` with NVIDIA_VISIBLE_DEVICES (nvidia-docker2 hosts).
- ``cdi``: CDI device names ``nvidia.com/gpu=<id>`` in a device request whose driver is
  ``cdi`` (Docker 25+, the toolkit's generated CDI spec in /etc/cdi or /var/run/cdi).

In every style NVIDIA_VISIBLE_DEVICES is set explicitly, to the assigned ids or to
``void`` for none: CUDA images ship ``NVIDIA_VISIBLE_DEVICES=all``, which on a host whose
default runtime is nvidia would otherwise expose every GPU to a CPU-only server.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .allocator import Gpu

REQUEST_STYLES = ("device_requests", "runtime", "cdi")
VISIBLE_DEVICES = "NVIDIA_VISIBLE_DEVICES"
NO_DEVICES = "void"
CDI_KIND = "nvidia.com/gpu"


def gpu_environment(ids: Iterable[str]) -> dict[str, str]:
    """NVIDIA_VISIBLE_DEVICES for exactly `ids` (``void`` for none), in every style."""
    ids = list(ids)
    return {VISIBLE_DEVICES: ",".join(ids) if ids else NO_DEVICES}


def gpu_host_config(style: str, ids: Iterable[str], *, driver: str = "") -> dict[str, Any]:
    """docker-py `create_host_config` arguments that give a container exactly `ids`.

    `driver` is the device-request driver of the ``device_requests`` style: "" lets the
    engine pick the driver that offers the "gpu" capability (as ``--gpus`` does), or
    "nvidia" to name it.
    """
    if style not in REQUEST_STYLES:
        raise ValueError(f"Unknown GPU request style {style!r}; use one of {REQUEST_STYLES}.")
    ids = list(ids)
    if not ids:
        return {}  # no device request and no nvidia runtime: nothing that could give a GPU
    if style == "runtime":
        return {"runtime": "nvidia"}

    from docker.types import DeviceRequest  # docker-py: only the hub host needs it

    if style == "device_requests":
        request = DeviceRequest(driver=driver, device_ids=ids, capabilities=[["gpu"]])
    else:
        # The engine's CDI driver refuses a count or options and ignores capabilities.
        request = DeviceRequest(driver="cdi", device_ids=[f"{CDI_KIND}={i}" for i in ids])
    return {"device_requests": [request]}


@dataclass(frozen=True)
class GpuContainerSettings:
    environment: dict[str, str] = field(default_factory=dict)
    host_config: dict[str, Any] = field(default_factory=dict)


def container_gpu_settings(
    style: str, gpus: Iterable[Gpu | str], *, driver: str = ""
) -> GpuContainerSettings:
    """What a container needs to see exactly `gpus` (ids or Gpu objects) in `style`."""
    ids = [g.id if isinstance(g, Gpu) else str(g) for g in gpus]
    host_config = gpu_host_config(style, ids, driver=driver)
    return GpuContainerSettings(environment=gpu_environment(ids), host_config=host_config)
