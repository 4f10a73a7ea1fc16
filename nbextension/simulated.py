"""A simulated GPU backend, described by a JSON document, for tests and demos without a GPU.

The format is documented in the README ("Simulated GPUs"). In short::

    {"driver_version": "550.54.15", "cuda_driver_version": "12.4",
     "init_error": null,              # or a state such as "driver_not_loaded"
     "gpus": [{"uuid": "GPU-...", "name": "...", "utilization_gpu": 37 or [10, 50, 90],
               "unsupported": ["fan"], "mig": null or [...],
               "processes": [{"pid": "self" or 4194999, "memory_used": 1073741824}]}]}

A list as a metric's value is cycled, one element per sample, so charts move predictably.
"""

from __future__ import annotations

import json
import os
from dataclasses import fields
from pathlib import Path
from typing import Any

from .backend import (
    STATE_MESSAGES,
    DeviceIdentity,
    GpuBackend,
    GpuReading,
    GpuUnavailable,
    MigInstance,
    RawProcess,
)

METRIC_FIELDS = tuple(
    f.name
    for f in fields(GpuReading)
    if f.name not in ("index", "uuid", "name", "mig", "processes", "slice_of")
)
_GPU_KEYS = {"index", "uuid", "name", "mig", "processes", "unsupported", *METRIC_FIELDS}
_TOP_KEYS = {
    "driver_version",
    "cuda_driver_version",
    "init_error",
    "init_error_detail",
    "read_error",
    "gpus",
}


class SimulatedDescriptionError(ValueError):
    """The simulated GPU description is not valid; the message says what to fix."""


def load_description(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a description file, with a clear message when it is unusable."""
    try:
        description = json.loads(Path(path).read_text())
    except OSError as e:
        raise SimulatedDescriptionError(
            f"The simulated GPU file {path} could not be read: {e.strerror}."
        ) from e
    except json.JSONDecodeError as e:
        raise SimulatedDescriptionError(
            f"The simulated GPU file {path} is not valid JSON (line {e.lineno}: {e.msg})."
        ) from e
    validate_description(description)
    return description


def validate_description(description: Any) -> None:
    """Raise :class:`SimulatedDescriptionError` for unknown keys or a malformed structure."""
    if not isinstance(description, dict):
        raise SimulatedDescriptionError("A simulated GPU description must be a JSON object.")
    unknown = set(description) - _TOP_KEYS
    if unknown:
        raise SimulatedDescriptionError(f"Unknown keys in the simulated GPUs: {sorted(unknown)}.")
    state = description.get("init_error")
    if state is not None and state not in STATE_MESSAGES:
        raise SimulatedDescriptionError(
            f"init_error must be one of {sorted(STATE_MESSAGES)}, not {state!r}."
        )
    gpus = description.get("gpus", [])
    if not isinstance(gpus, list):
        raise SimulatedDescriptionError("'gpus' must be a list of GPU objects.")
    for position, gpu in enumerate(gpus):
        if not isinstance(gpu, dict):
            raise SimulatedDescriptionError(f"GPU {position} must be a JSON object.")
        unknown = set(gpu) - _GPU_KEYS
        unknown |= set(gpu.get("unsupported", ())) - set(METRIC_FIELDS)
        if unknown:
            raise SimulatedDescriptionError(f"Unknown keys in GPU {position}: {sorted(unknown)}.")


class SimulatedBackend(GpuBackend):
    """Serves the GPUs of a description; no driver involved."""

    name = "simulated"
    processes_hold_device_files = False  # its processes are ordinary ones, see processes.py

    def __init__(self, description: dict[str, Any]) -> None:
        validate_description(description)
        self.description = description
        self._reads = 0

    def _gpus(self) -> list[tuple[int, dict[str, Any]]]:
        return [(g.get("index", i), g) for i, g in enumerate(self.description.get("gpus", []))]

    @staticmethod
    def _uuid(index: int, gpu: dict[str, Any]) -> str:
        return gpu.get("uuid") or f"GPU-00000000-0000-4000-8000-{index:012d}"

    def open(self) -> list[DeviceIdentity]:
        state = self.description.get("init_error")
        if state:
            raise GpuUnavailable(state, self.description.get("init_error_detail", ""))
        gpus = self._gpus()
        if not gpus:
            raise GpuUnavailable("no_devices")
        return [
            DeviceIdentity(
                index, self._uuid(index, gpu), tuple(m["uuid"] for m in gpu.get("mig") or ())
            )
            for index, gpu in gpus
        ]

    def _value(self, gpu: dict[str, Any], name: str) -> Any:
        if name in gpu.get("unsupported", ()):
            return None
        value = gpu.get(name)
        if isinstance(value, list):
            return value[self._reads % len(value)] if value else None
        return value

    def read(self, indices: list[int]) -> list[GpuReading]:
        if self.description.get("read_error"):
            raise RuntimeError(self.description["read_error"])
        wanted = set(indices)
        readings = []
        for index, gpu in self._gpus():
            if index not in wanted:
                continue
            mig = gpu.get("mig")
            readings.append(
                GpuReading(
                    index=index,
                    uuid=self._uuid(index, gpu),
                    name=gpu.get("name", "Simulated GPU"),
                    mig=None if mig is None else tuple(MigInstance(**m) for m in mig),
                    processes=tuple(
                        RawProcess(
                            os.getpid() if p["pid"] == "self" else int(p["pid"]),
                            p.get("memory_used"),
                        )
                        for p in gpu.get("processes", ())
                    ),
                    **{name: self._value(gpu, name) for name in METRIC_FIELDS},
                )
            )
        self._reads += 1
        return readings

    def versions(self) -> tuple[str | None, str | None]:
        return self.description.get("driver_version"), self.description.get("cuda_driver_version")
