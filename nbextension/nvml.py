"""The real backend: NVML through nvidia-ml-py (``import pynvml``), imported only when opened.

Every per-field call is wrapped, so a field the device does not support becomes ``None``. Start-up
failures are classified into the states of :data:`nbextension.backend.STATE_MESSAGES`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .backend import (
    DeviceIdentity,
    GpuBackend,
    GpuReading,
    GpuUnavailable,
    MigInstance,
    RawProcess,
)

# NVML return codes (nvml.h) and the state each start-up failure means for the user.
_STATE_OF_NVML_CODE = {
    12: "library_not_found",  # NVML_ERROR_LIBRARY_NOT_FOUND
    13: "library_not_found",  # NVML_ERROR_FUNCTION_NOT_FOUND: libnvidia-ml too old
    9: "driver_not_loaded",  # NVML_ERROR_DRIVER_NOT_LOADED
    18: "driver_not_loaded",  # NVML_ERROR_LIB_RM_VERSION_MISMATCH: library and driver differ
    4: "no_permission",  # NVML_ERROR_NO_PERMISSION
    6: "no_devices",  # NVML_ERROR_NOT_FOUND
    28: "no_devices",  # NVML_ERROR_GPU_NOT_FOUND
}


def classify_nvml_error(code: int | None) -> str:
    """The status state for an NVML error code raised while starting."""
    return _STATE_OF_NVML_CODE.get(code, "error") if code is not None else "error"


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def format_cuda_driver_version(version: int | None) -> str | None:
    """NVML gives the CUDA driver API version as 1000*major + 10*minor (12040 -> "12.4")."""
    if not version:
        return None
    return f"{version // 1000}.{(version % 1000) // 10}"


class NvmlBackend(GpuBackend):
    """Reads the GPUs through NVML."""

    name = "nvml"
    processes_hold_device_files = True

    def __init__(self) -> None:
        self._nvml: Any = None
        self._handles: dict[int, Any] = {}
        self._static: dict[int, tuple[str, str]] = {}
        self._initialised = False

    def _safe(self, call: Callable[..., Any], *args: Any) -> Any:
        try:
            return call(*args)
        except self._nvml.NVMLError:
            return None

    def open(self) -> list[DeviceIdentity]:
        try:
            import pynvml
        except ImportError as e:
            raise GpuUnavailable(
                "library_not_found", "the nvidia-ml-py package is not installed"
            ) from e
        self._nvml = pynvml
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as e:
            raise GpuUnavailable(classify_nvml_error(getattr(e, "value", None)), str(e)) from e
        self._initialised = True
        try:
            count = pynvml.nvmlDeviceGetCount()
            devices = []
            for index in range(count):
                handle = pynvml.nvmlDeviceGetHandleByIndex(index)
                uuid = _text(pynvml.nvmlDeviceGetUUID(handle))
                self._handles[index] = handle
                self._static[index] = (uuid, _text(pynvml.nvmlDeviceGetName(handle)))
                mig = self._mig_instances(self._mig_handles(handle))
                mig_uuids = tuple(m.uuid for m in mig or ())
                devices.append(DeviceIdentity(index, uuid, mig_uuids))
        except pynvml.NVMLError as e:
            self.close()
            raise GpuUnavailable(classify_nvml_error(getattr(e, "value", None)), str(e)) from e
        if not devices:
            self.close()
            raise GpuUnavailable("no_devices")
        return devices

    def _mig_handles(self, handle: Any) -> list[Any] | None:
        nvml = self._nvml
        mode = self._safe(nvml.nvmlDeviceGetMigMode, handle)
        if not mode or mode[0] != nvml.NVML_DEVICE_MIG_ENABLE:
            return None
        handles = []
        for slot in range(self._safe(nvml.nvmlDeviceGetMaxMigDeviceCount, handle) or 0):
            mig = self._safe(nvml.nvmlDeviceGetMigDeviceHandleByIndex, handle, slot)
            if mig is not None:  # empty slots raise NOT_FOUND
                handles.append(mig)
        return handles

    def _mig_instances(self, handles: list[Any] | None) -> tuple[MigInstance, ...] | None:
        """The MIG instances behind ``handles`` (from :meth:`_mig_handles`); None: no MIG."""
        if handles is None:
            return None
        instances = []
        for position, mig in enumerate(handles):
            memory = self._safe(self._nvml.nvmlDeviceGetMemoryInfo, mig)
            instances.append(
                MigInstance(
                    index=position,
                    uuid=_text(self._safe(self._nvml.nvmlDeviceGetUUID, mig) or ""),
                    name=_text(self._safe(self._nvml.nvmlDeviceGetName, mig) or "MIG instance"),
                    memory_used=memory.used if memory else None,
                    memory_total=memory.total if memory else None,
                )
            )
        return tuple(instances)

    def _processes(self, handle: Any, mig_handles: list[Any] | None) -> tuple[RawProcess, ...]:
        nvml = self._nvml
        found: dict[int, int | None] = {}
        for source in [handle, *(mig_handles or ())]:
            for call in (
                nvml.nvmlDeviceGetComputeRunningProcesses,
                nvml.nvmlDeviceGetGraphicsRunningProcesses,
            ):
                for info in self._safe(call, source) or ():
                    memory = info.usedGpuMemory
                    if info.pid not in found or found[info.pid] is None:
                        found[info.pid] = memory
        return tuple(RawProcess(pid, memory) for pid, memory in found.items())

    def read(self, indices: list[int]) -> list[GpuReading]:
        nvml = self._nvml
        safe = self._safe
        readings = []
        for index in indices:
            handle = self._handles[index]
            uuid, name = self._static[index]
            utilization = safe(nvml.nvmlDeviceGetUtilizationRates, handle)
            memory = safe(nvml.nvmlDeviceGetMemoryInfo, handle)
            power = safe(nvml.nvmlDeviceGetPowerUsage, handle)
            limit = safe(nvml.nvmlDeviceGetEnforcedPowerLimit, handle)
            mig_handles = self._mig_handles(handle)
            readings.append(
                GpuReading(
                    index=index,
                    uuid=uuid,
                    name=name,
                    utilization_gpu=utilization.gpu if utilization else None,
                    utilization_memory=utilization.memory if utilization else None,
                    memory_used=memory.used if memory else None,
                    memory_total=memory.total if memory else None,
                    temperature=safe(
                        nvml.nvmlDeviceGetTemperature, handle, nvml.NVML_TEMPERATURE_GPU
                    ),
                    power_draw=power / 1000.0 if power is not None else None,
                    power_limit=limit / 1000.0 if limit is not None else None,
                    clock_sm=safe(nvml.nvmlDeviceGetClockInfo, handle, nvml.NVML_CLOCK_SM),
                    clock_memory=safe(nvml.nvmlDeviceGetClockInfo, handle, nvml.NVML_CLOCK_MEM),
                    fan=safe(nvml.nvmlDeviceGetFanSpeed, handle),
                    pcie_generation=safe(nvml.nvmlDeviceGetCurrPcieLinkGeneration, handle),
                    pcie_width=safe(nvml.nvmlDeviceGetCurrPcieLinkWidth, handle),
                    mig=self._mig_instances(mig_handles),
                    processes=self._processes(handle, mig_handles),
                )
            )
        return readings

    def versions(self) -> tuple[str | None, str | None]:
        nvml = self._nvml
        if nvml is None:
            return None, None
        driver = self._safe(nvml.nvmlSystemGetDriverVersion)
        cuda = self._safe(nvml.nvmlSystemGetCudaDriverVersion)
        return (_text(driver) if driver else None), format_cuda_driver_version(cuda)

    def close(self) -> None:
        if self._initialised:
            self._safe(self._nvml.nvmlShutdown)
        self._initialised = False
        self._handles = {}
