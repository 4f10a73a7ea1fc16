"""How a container is given its GPUs, per request style, as plain data.

`host_config` entries are keyword arguments of docker-py's `create_host_config`,
`create_kwargs` of `create_container`, `environment` the container's environment; the
spawner merges them into DockerSpawner's `extra_host_config`, `extra_create_kwargs` and
environment.

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

from .gpus import Gpu

REQUEST_STYLES = ("device_requests", "runtime", "cdi")
VISIBLE_DEVICES = "NVIDIA_VISIBLE_DEVICES"
NO_DEVICES = "void"
CDI_KIND = "nvidia.com/gpu"


@dataclass(frozen=True)
class GpuContainerSettings:
    environment: dict[str, str] = field(default_factory=dict)
    host_config: dict[str, Any] = field(default_factory=dict)
    create_kwargs: dict[str, Any] = field(default_factory=dict)


def container_gpu_settings(
    style: str,
    gpus: Iterable[Gpu | str],
    *,
    driver: str = "",
    cdi_kind: str = CDI_KIND,
) -> GpuContainerSettings:
    """What a container needs to see exactly `gpus` (ids or Gpu objects) in `style`.

    `driver` is the device-request driver of the ``device_requests`` style: "" lets the
    engine pick the driver that offers the "gpu" capability (as ``--gpus`` does), or
    "nvidia" to name it.
    """
    if style not in REQUEST_STYLES:
        raise ValueError(f"Unknown GPU request style {style!r}; use one of {REQUEST_STYLES}.")
    ids = [g.id if isinstance(g, Gpu) else str(g) for g in gpus]
    if not ids:
        # No device request and no nvidia runtime: nothing that could give a GPU.
        return GpuContainerSettings(environment={VISIBLE_DEVICES: NO_DEVICES})

    environment = {VISIBLE_DEVICES: ",".join(ids)}
    if style == "runtime":
        return GpuContainerSettings(environment=environment, host_config={"runtime": "nvidia"})

    from docker.types import DeviceRequest  # docker-py: only the hub host needs it

    if style == "device_requests":
        request = DeviceRequest(driver=driver, device_ids=ids, capabilities=[["gpu"]])
    else:
        # The engine's CDI driver refuses a count or options and ignores capabilities.
        request = DeviceRequest(driver="cdi", device_ids=[f"{cdi_kind}={i}" for i in ids])
    return GpuContainerSettings(environment=environment, host_config={"device_requests": [request]})
