"""Where the hub learns the GPUs of its Docker host: NVML, or the admin's configuration.

NVML (``nvidia-ml-py``, imported lazily) fits a hub that runs on the GPU host itself; it
also gives each GPU's compute capability, the driver version and the MIG slices of GPUs in
MIG mode.
A hub in a container, or one talking to a remote engine, cannot see the GPUs: the
admin lists them (`inventory_from_config`). Without a driver, NVML gives an empty
inventory and the reason in the log: the hub then offers CPU profiles only.
"""

from __future__ import annotations

import json
import logging

from ..environment import setting
from .allocator import Gpu
from .inventory_list import MIG_PROFILE, parse_inventory
from .simulated_nvml import PREFIX as SIMULATED
from .simulated_nvml import SimulatedNvml

INVENTORY_ENV = "CUDASPAWNER_GPU_INVENTORY"

_log = logging.getLogger(__name__)


def inventory_from_config(value: object) -> list[Gpu]:
    """GPUs from a configured list (see `gpus.parse_inventory`); ValueError if malformed."""
    return parse_inventory(value)  # type: ignore[arg-type]


def _nvml(log: logging.Logger):
    """pynvml, or None (logged) when nvidia-ml-py is not installed."""
    try:
        import pynvml
    except ImportError:
        log.warning("No GPU inventory: nvidia-ml-py is not installed (pip install nvidia-ml-py).")
        return None
    return pynvml


def inventory_from_nvml(log: logging.Logger | None = None, nvml=None) -> list[Gpu]:
    """The GPUs NVML sees on this machine, with the slices of those in MIG mode; ids are
    UUIDs; [] (with a logged reason) if none. `nvml`: pynvml, or `SimulatedNvml` in tests.

    UUIDs, not indices, go into the labels: they stay right when a GPU is removed or the
    driver enumerates in another order after a reboot.
    """
    log = log or _log
    nvml = nvml or _nvml(log)
    if nvml is None:
        return []
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as e:
        log.warning("No GPU inventory: NVML is not usable on this machine (%s).", e)
        return []
    try:
        gpus: list[Gpu] = []
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            major, minor = nvml.nvmlDeviceGetCudaComputeCapability(handle)
            gpu = Gpu(
                index=index,
                id=_text(nvml.nvmlDeviceGetUUID(handle)),
                name=_text(nvml.nvmlDeviceGetName(handle)),
                compute_capability=f"{major}.{minor}",
            )
            gpus += [gpu, *_mig_slices(nvml, handle, gpu)]
        return gpus
    except nvml.NVMLError as e:
        # A half-read inventory would hide GPUs; better none and a clear reason.
        log.warning("No GPU inventory: NVML failed while listing the GPUs (%s).", e)
        return []
    finally:
        try:
            nvml.nvmlShutdown()
        except nvml.NVMLError as e:
            log.debug("nvmlShutdown failed: %s", e)


def _mig_slices(nvml, handle, gpu: Gpu) -> list[Gpu]:
    """The MIG devices of a GPU in MIG mode ([] for one that is not, or cannot be)."""
    try:
        current, _pending = nvml.nvmlDeviceGetMigMode(handle)
    except nvml.NVMLError:  # "Not Supported": a GPU without MIG
        return []
    if current != nvml.NVML_DEVICE_MIG_ENABLE:
        return []
    slices = []
    for position in range(nvml.nvmlDeviceGetMaxMigDeviceCount(handle)):
        try:
            mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, position)
        except nvml.NVMLError:  # "Not Found": fewer slices than the GPU could hold
            continue
        name = _text(nvml.nvmlDeviceGetName(mig))
        # NVML names a MIG device "<GPU model> MIG <profile>", as nvidia-smi -L shows it.
        profile = name.rsplit(" MIG ", 1)[-1].strip() if " MIG " in name else ""
        slices.append(
            Gpu(
                index=gpu.index,
                id=_text(nvml.nvmlDeviceGetUUID(mig)),
                name=name,
                compute_capability=gpu.compute_capability,
                parent=gpu.id,
                mig_profile=profile if MIG_PROFILE.match(profile) else "unknown",
                memory_mib=nvml.nvmlDeviceGetMemoryInfo(mig).total // (1024 * 1024),
            )
        )
    return slices


def driver_from_nvml(log: logging.Logger | None = None, nvml=None) -> str:
    """This machine's NVIDIA driver version ("550.54.15"); "" when NVML cannot tell."""
    try:
        if nvml is None:
            import pynvml as nvml
        nvml.nvmlInit()
    except Exception as e:  # no library, no driver: nothing to check images against
        (log or _log).info("No NVIDIA driver version: %s", e)
        return ""
    try:
        return _text(nvml.nvmlSystemGetDriverVersion())
    except nvml.NVMLError as e:
        (log or _log).warning("NVML did not give the driver version: %s", e)
        return ""
    finally:
        try:
            nvml.nvmlShutdown()
        except nvml.NVMLError:
            pass


def _text(value: str | bytes) -> str:
    # Older nvidia-ml-py releases return bytes.
    return value.decode() if isinstance(value, bytes) else value


def read_host(value: object, log: logging.Logger | None = None) -> tuple[list[Gpu], str]:
    """(the inventory, the driver version or "") from a setting: "nvml", a JSON list
    (text) or a list, or "simulated-nvml:<file.json>" (tests; see `simulated_nvml`)."""
    if isinstance(value, str):
        text = value.strip()
        if text.lower() == "nvml":
            return inventory_from_nvml(log), driver_from_nvml(log)
        if text.startswith(SIMULATED):
            nvml = SimulatedNvml.from_file(text[len(SIMULATED) :])
            return inventory_from_nvml(log, nvml), driver_from_nvml(log, nvml)
        try:
            value = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(
                f'The GPU inventory {text!r} is neither "nvml" nor a JSON list ({e.msg}).'
            ) from None
    return inventory_from_config(value), ""


def load_inventory(value: object, log: logging.Logger | None = None) -> list[Gpu]:
    """The inventory from a setting (see `read_host`)."""
    return read_host(value, log)[0]


def inventory_from_env(
    env: dict[str, str] | None = None, log: logging.Logger | None = None
) -> list[Gpu] | None:
    """The inventory named by CUDASPAWNER_GPU_INVENTORY, or None when it is not set."""
    value = setting(INVENTORY_ENV, env)
    return load_inventory(value, log) if value else None
