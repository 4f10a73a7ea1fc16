"""The GPU backend interface: what a backend reads, and how it reports that it cannot read.

A backend is opened once, then read once per sample by the sampler thread. Every field a device
does not support is ``None``; a backend never raises for a single unsupported field. A backend
that cannot start raises :class:`GpuUnavailable` with one of the states below.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

# States of the status endpoint other than "ok", each with the sentence the user sees.
STATE_MESSAGES: dict[str, str] = {
    "no_gpu": "No GPU is assigned to this server.",
    "library_not_found": (
        "The NVIDIA management library (libnvidia-ml) is not available in this server, so GPU "
        "status cannot be read. Ask your administrator to start GPU servers with the NVIDIA "
        "container runtime."
    ),
    "driver_not_loaded": (
        "The NVIDIA driver is not loaded on the machine running this server. Ask your "
        "administrator to check the GPU driver."
    ),
    "no_devices": "The NVIDIA driver reports no GPUs for this server.",
    "no_permission": (
        "This server is not allowed to read the GPUs (permission denied). Ask your "
        "administrator to check the device permissions of the container."
    ),
    "error": "GPU status could not be read.",
}


def with_detail(sentence: str, detail: str) -> str:
    """Append a detail to a sentence: as its own sentence if it is one, else in parentheses."""
    if not detail:
        return sentence
    return f"{sentence} {detail}" if detail.endswith(".") else f"{sentence} ({detail})"


class GpuUnavailable(Exception):
    """The backend cannot read any GPU; ``state`` is a key of :data:`STATE_MESSAGES`."""

    def __init__(self, state: str, detail: str = "") -> None:
        if state not in STATE_MESSAGES:
            raise ValueError(f"unknown GPU state {state!r}")
        self.state = state
        self.detail = detail
        super().__init__(self.message)

    @property
    def message(self) -> str:
        return with_detail(STATE_MESSAGES[self.state], self.detail)


@dataclass(frozen=True)
class DeviceIdentity:
    """What identifies a device: used to match it against the visibility variables."""

    index: int
    uuid: str
    mig_uuids: tuple[str, ...] = ()


@dataclass(frozen=True)
class MigInstance:
    """One MIG instance of a GPU in MIG mode."""

    index: int
    uuid: str
    name: str
    memory_used: int | None = None
    memory_total: int | None = None


@dataclass(frozen=True)
class RawProcess:
    """A process as the driver reports it: a host PID, maybe not visible in this container."""

    pid: int
    memory_used: int | None = None


@dataclass(frozen=True)
class GpuReading:
    """One sample of one GPU. Units: bytes, percent, degrees C, watts, MHz."""

    index: int
    uuid: str
    name: str
    utilization_gpu: int | None = None
    utilization_memory: int | None = None
    memory_used: int | None = None
    memory_total: int | None = None
    temperature: int | None = None
    power_draw: float | None = None
    power_limit: float | None = None
    clock_sm: int | None = None
    clock_memory: int | None = None
    fan: int | None = None
    pcie_generation: int | None = None
    pcie_width: int | None = None
    mig: tuple[MigInstance, ...] | None = None
    processes: tuple[RawProcess, ...] = field(default_factory=tuple)
    # A MIG slice given to this server: its GPU's name (see `slices`); None for a GPU.
    slice_of: str | None = None

    @property
    def identity(self) -> DeviceIdentity:
        return DeviceIdentity(self.index, self.uuid, tuple(m.uuid for m in self.mig or ()))


class GpuBackend(abc.ABC):
    """Reads the GPUs of this machine. Only the sampler thread calls these methods."""

    #: the value of "backend" in the status document
    name: str = ""

    @abc.abstractmethod
    def open(self) -> list[DeviceIdentity]:
        """Start the backend and list every device it sees.

        Raises :class:`GpuUnavailable` when no GPU can be read (library missing, driver not
        loaded, no devices, permission denied, anything else as ``error``).
        """

    @abc.abstractmethod
    def read(self, indices: list[int]) -> list[GpuReading]:
        """Sample the devices with these indices (as returned by :meth:`open`)."""

    @abc.abstractmethod
    def versions(self) -> tuple[str | None, str | None]:
        """Return ``(driver_version, cuda_driver_version)``, each None when unknown."""

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release the backend; called once from the sampler thread when it stops."""
