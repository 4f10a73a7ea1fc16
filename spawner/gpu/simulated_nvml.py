"""A SIMULATED NVML for the hub's inventory: the few `pynvml` calls `inventory` makes,
answered from a host description instead of a driver.

For tests and demonstrations on machines without a GPU, never for production: the hub
reads it only when its inventory setting says ``simulated-nvml:<file.json>``. The file
describes a host the way NVML would report it::

    {"driver": "550.54.15",
     "gpus": [{"uuid": "GPU-...", "name": "NVIDIA H100 80GB HBM3",
               "compute_capability": "9.0", "memory_mib": 81559,
               "mig": [{"uuid": "MIG-...", "profile": "1g.10gb", "memory_mib": 9856}]}]}

A GPU with a ``mig`` list is in MIG mode; its slices are named as NVML names MIG devices
("NVIDIA H100 80GB HBM3 MIG 1g.10gb").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

PREFIX = "simulated-nvml:"
NVML_DEVICE_MIG_ENABLE = 1
NVML_DEVICE_MIG_DISABLE = 0


class NVMLError(Exception):
    """As pynvml's: what a call on a device that cannot answer raises."""


@dataclass(frozen=True)
class _Memory:
    total: int  # bytes, as NVML's
    free: int
    used: int


@dataclass(frozen=True)
class _Device:
    description: dict
    parent: dict | None = None


class SimulatedNvml:
    """The `pynvml` calls the hub's inventory makes, over one described host."""

    NVMLError = NVMLError
    NVML_DEVICE_MIG_ENABLE = NVML_DEVICE_MIG_ENABLE

    def __init__(self, host: dict) -> None:
        if not isinstance(host, dict) or not isinstance(host.get("gpus", []), list):
            raise ValueError('A simulated NVML host is {"driver": ..., "gpus": [...]}.')
        self.host = host

    @classmethod
    def from_file(cls, path: str | Path) -> SimulatedNvml:
        try:
            return cls(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"Cannot read the simulated NVML host {str(path)!r}: {e}") from None

    def nvmlInit(self) -> None:  # noqa: N802 (pynvml's names)
        if self.host.get("no_driver"):
            raise NVMLError("Driver Not Loaded")

    def nvmlShutdown(self) -> None:  # noqa: N802
        pass

    def nvmlSystemGetDriverVersion(self) -> str:  # noqa: N802
        return str(self.host.get("driver", ""))

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802
        return len(self.host.get("gpus", []))

    def nvmlDeviceGetHandleByIndex(self, index: int) -> _Device:  # noqa: N802
        return _Device(self.host["gpus"][index])

    def nvmlDeviceGetUUID(self, device: _Device) -> str:  # noqa: N802
        return str(device.description["uuid"])

    def nvmlDeviceGetName(self, device: _Device) -> str:  # noqa: N802
        if device.parent is not None:
            return f"{device.parent.get('name', '')} MIG {device.description['profile']}"
        return str(device.description.get("name", ""))

    def nvmlDeviceGetCudaComputeCapability(self, device: _Device) -> tuple[int, int]:  # noqa: N802
        major, minor = str(device.description.get("compute_capability", "8.0")).split(".")
        return int(major), int(minor)

    def nvmlDeviceGetMemoryInfo(self, device: _Device) -> _Memory:  # noqa: N802
        total = int(device.description.get("memory_mib", 0)) * 1024 * 1024
        return _Memory(total=total, free=total, used=0)

    def nvmlDeviceGetMigMode(self, device: _Device) -> tuple[int, int]:  # noqa: N802
        if "mig" not in device.description:
            if not device.description.get("mig_capable", False):
                raise NVMLError("Not Supported")
            return NVML_DEVICE_MIG_DISABLE, NVML_DEVICE_MIG_DISABLE
        return NVML_DEVICE_MIG_ENABLE, NVML_DEVICE_MIG_ENABLE

    def nvmlDeviceGetMaxMigDeviceCount(self, device: _Device) -> int:  # noqa: N802
        return 7

    def nvmlDeviceGetMigDeviceHandleByIndex(self, device: _Device, index: int) -> _Device:  # noqa: N802
        slices = device.description.get("mig", [])
        if index >= len(slices):
            raise NVMLError("Not Found")
        return _Device(slices[index], parent=device.description)
