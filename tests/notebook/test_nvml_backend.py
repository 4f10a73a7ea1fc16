"""The NVML backend: start-up failures as states, and readings with units and nulls.

The driver calls are replaced on the real ``pynvml`` module (its own exception classes are
used), so the mapping code runs here without a GPU.
"""

from __future__ import annotations

import ctypes.util
from types import SimpleNamespace

import pynvml
import pytest

from nbextension.backend import STATE_MESSAGES, GpuUnavailable
from nbextension.nvml import NvmlBackend, classify_nvml_error, format_cuda_driver_version

MIB = 1 << 20


@pytest.mark.skipif(
    ctypes.util.find_library("nvidia-ml") is not None,
    reason="an NVIDIA driver library is installed here; this test is for machines without one",
)
def test_machine_without_driver_reports_library_not_found_not_a_crash():
    with pytest.raises(GpuUnavailable) as raised:
        NvmlBackend().open()
    assert raised.value.state == "library_not_found"
    assert raised.value.message.startswith(STATE_MESSAGES["library_not_found"])


@pytest.mark.parametrize(
    "code, state",
    [
        (pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, "library_not_found"),
        (pynvml.NVML_ERROR_DRIVER_NOT_LOADED, "driver_not_loaded"),
        (pynvml.NVML_ERROR_NO_PERMISSION, "no_permission"),
        (pynvml.NVML_ERROR_GPU_NOT_FOUND, "no_devices"),
        (pynvml.NVML_ERROR_UNKNOWN, "error"),
    ],
)
def test_init_error_is_classified_as_its_state(monkeypatch, code, state):
    def failing_init():
        raise pynvml.NVMLError(code)

    monkeypatch.setattr(pynvml, "nvmlInit", failing_init)
    with pytest.raises(GpuUnavailable) as raised:
        NvmlBackend().open()
    assert raised.value.state == state == classify_nvml_error(code)
    assert raised.value.message.startswith(STATE_MESSAGES[state])


def test_zero_devices_is_no_devices(monkeypatch):
    monkeypatch.setattr(pynvml, "nvmlInit", lambda: None)
    monkeypatch.setattr(pynvml, "nvmlShutdown", lambda: None)
    monkeypatch.setattr(pynvml, "nvmlDeviceGetCount", lambda: 0)
    with pytest.raises(GpuUnavailable) as raised:
        NvmlBackend().open()
    assert raised.value.state == "no_devices"


def test_cuda_driver_version_is_formatted_as_major_minor():
    assert format_cuda_driver_version(12040) == "12.4"
    assert format_cuda_driver_version(13000) == "13.0"
    assert format_cuda_driver_version(None) is None


def not_supported(*_args):
    raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)


@pytest.fixture
def fake_driver(monkeypatch):
    """Two GPUs: GPU 0 an ordinary one without a fan, GPU 1 in MIG mode with two instances."""
    gpus = {
        0: dict(uuid="GPU-0000", name=b"NVIDIA H100 80GB HBM3", mig=False),
        1: dict(uuid="GPU-1111", name="NVIDIA A100-SXM4-40GB", mig=True),
    }
    migs = {("mig", 1, 0): "MIG-aaaa", ("mig", 1, 2): "MIG-bbbb"}  # slot 1 is empty
    memory = SimpleNamespace(used=3 * MIB, total=80 * 1024 * MIB)

    def mig_handle(handle, slot):
        if ("mig", handle, slot) not in migs:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_FOUND)
        return ("mig", handle, slot)

    def uuid(handle):
        return migs[handle] if isinstance(handle, tuple) else gpus[handle]["uuid"]

    def processes(kind):
        def listing(handle):
            if handle == 0 and kind == "compute":
                return [SimpleNamespace(pid=10, usedGpuMemory=None)]
            if handle == 0:  # the same PID also reported as graphics, this time with memory
                return [SimpleNamespace(pid=10, usedGpuMemory=5 * MIB)]
            if handle == ("mig", 1, 2) and kind == "compute":
                return [SimpleNamespace(pid=4194999, usedGpuMemory=7 * MIB)]
            return []

        return listing

    calls = {
        "nvmlInit": lambda: None,
        "nvmlShutdown": lambda: None,
        "nvmlDeviceGetCount": lambda: len(gpus),
        "nvmlDeviceGetHandleByIndex": lambda i: i,
        "nvmlDeviceGetUUID": uuid,
        "nvmlDeviceGetName": lambda h: "1g.10gb" if isinstance(h, tuple) else gpus[h]["name"],
        "nvmlDeviceGetMigMode": lambda h: (int(gpus[h]["mig"]), int(gpus[h]["mig"])),
        "nvmlDeviceGetMaxMigDeviceCount": lambda h: 3,
        "nvmlDeviceGetMigDeviceHandleByIndex": mig_handle,
        "nvmlDeviceGetUtilizationRates": lambda h: (
            not_supported() if h == 1 else SimpleNamespace(gpu=93, memory=40)
        ),
        "nvmlDeviceGetMemoryInfo": lambda h: memory,
        "nvmlDeviceGetTemperature": lambda h, sensor: 61,
        "nvmlDeviceGetPowerUsage": lambda h: 250500,  # milliwatts
        "nvmlDeviceGetEnforcedPowerLimit": lambda h: 700000,
        "nvmlDeviceGetClockInfo": lambda h, clock: {pynvml.NVML_CLOCK_SM: 1980}.get(clock, 2619),
        "nvmlDeviceGetFanSpeed": not_supported,
        "nvmlDeviceGetCurrPcieLinkGeneration": lambda h: 5,
        "nvmlDeviceGetCurrPcieLinkWidth": not_supported,
        "nvmlDeviceGetComputeRunningProcesses": processes("compute"),
        "nvmlDeviceGetGraphicsRunningProcesses": processes("graphics"),
        "nvmlSystemGetDriverVersion": lambda: "550.54.15",
        "nvmlSystemGetCudaDriverVersion": lambda: 12040,
    }
    for name, call in calls.items():
        monkeypatch.setattr(pynvml, name, call)


def test_open_lists_devices_with_their_mig_uuids(fake_driver):
    devices = NvmlBackend().open()
    assert [(d.index, d.uuid, d.mig_uuids) for d in devices] == [
        (0, "GPU-0000", ()),
        (1, "GPU-1111", ("MIG-aaaa", "MIG-bbbb")),
    ]


def test_readings_convert_units_and_null_unsupported_fields(fake_driver):
    backend = NvmlBackend()
    backend.open()
    first, second = backend.read([0, 1])
    assert first.name == "NVIDIA H100 80GB HBM3"  # bytes from older bindings are decoded
    assert (first.utilization_gpu, first.utilization_memory) == (93, 40)
    assert (first.power_draw, first.power_limit) == (250.5, 700.0)
    assert (first.clock_sm, first.clock_memory) == (1980, 2619)
    assert first.fan is None and first.pcie_width is None and first.pcie_generation == 5
    assert first.mig is None
    assert [(p.pid, p.memory_used) for p in first.processes] == [(10, 5 * MIB)]
    assert second.utilization_gpu is None and second.utilization_memory is None
    assert [(m.index, m.uuid, m.name) for m in second.mig] == [
        (0, "MIG-aaaa", "1g.10gb"),
        (1, "MIG-bbbb", "1g.10gb"),
    ]
    assert [(p.pid, p.memory_used) for p in second.processes] == [(4194999, 7 * MIB)]
    assert backend.versions() == ("550.54.15", "12.4")


def test_fields_that_start_failing_read_as_null_without_losing_the_gpu(fake_driver, monkeypatch):
    backend = NvmlBackend()
    backend.open()
    for name in ("nvmlDeviceGetMemoryInfo", "nvmlDeviceGetTemperature", "nvmlDeviceGetPowerUsage"):
        monkeypatch.setattr(pynvml, name, lambda *a: not_supported())
    reading = backend.read([0])[0]
    assert reading.memory_used is None and reading.temperature is None
    assert reading.power_draw is None and reading.uuid == "GPU-0000"


@pytest.mark.parametrize(
    "visible, expected",
    [("0", 1), ("0,1", None), ("void", 0)],
    ids=["one plain GPU", "with a MIG GPU", "no GPU"],
)
def test_verification_expects_the_gpus_nvml_shows(fake_driver, visible, expected):
    from prometheus_client import CollectorRegistry

    from nbextension.config import GpuMonitor
    from nbextension.extension import GpuExtension

    extension = GpuExtension(
        GpuMonitor(backend="nvml"), {"NVIDIA_VISIBLE_DEVICES": visible}, CollectorRegistry()
    )
    extension.sampler.sample_once()
    extension.sampler.first_result.set()
    # CUDA lists MIG instances rather than GPUs, so a MIG GPU leaves the count unknown (None).
    assert extension.expected_gpus() == expected
