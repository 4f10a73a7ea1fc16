"""Where the hub learns the GPUs of its Docker host: NVML, or the admin's configuration.

NVML (``nvidia-ml-py``, imported lazily) fits a hub that runs on the GPU host itself.
A hub in a container, or one talking to a remote engine, cannot see the GPUs: the
admin lists them (`inventory_from_config`). Without a driver, NVML gives an empty
inventory and the reason in the log: the hub then offers CPU profiles only.
"""

from __future__ import annotations

import json
import logging

from ..environment import setting
from .allocator import Gpu, parse_inventory

INVENTORY_ENV = "CUDASPAWNER_GPU_INVENTORY"

_log = logging.getLogger(__name__)


def inventory_from_config(value: object) -> list[Gpu]:
    """GPUs from a configured list (see `gpus.parse_inventory`); ValueError if malformed."""
    return parse_inventory(value)  # type: ignore[arg-type]


def inventory_from_nvml(log: logging.Logger | None = None) -> list[Gpu]:
    """The GPUs NVML sees on this machine, ids being UUIDs; [] (with a logged reason) if none.

    UUIDs, not indices, go into the labels: they stay right when a GPU is removed or the
    driver enumerates in another order after a reboot.
    """
    log = log or _log
    try:
        import pynvml
    except ImportError:
        log.warning("No GPU inventory: nvidia-ml-py is not installed (pip install nvidia-ml-py).")
        return []
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as e:
        log.warning("No GPU inventory: NVML is not usable on this machine (%s).", e)
        return []
    try:
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
            gpus.append(
                Gpu(
                    index=index,
                    id=_text(pynvml.nvmlDeviceGetUUID(handle)),
                    name=_text(pynvml.nvmlDeviceGetName(handle)),
                    compute_capability=f"{major}.{minor}",
                )
            )
        return gpus
    except pynvml.NVMLError as e:
        # A half-read inventory would hide GPUs; better none and a clear reason.
        log.warning("No GPU inventory: NVML failed while listing the GPUs (%s).", e)
        return []
    finally:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError as e:
            log.debug("nvmlShutdown failed: %s", e)


def driver_from_nvml(log: logging.Logger | None = None) -> str:
    """This machine's NVIDIA driver version ("550.54.15"); "" when NVML cannot tell."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as e:  # no library, no driver: nothing to check images against
        (log or _log).info("No NVIDIA driver version: %s", e)
        return ""
    try:
        return _text(pynvml.nvmlSystemGetDriverVersion())
    except pynvml.NVMLError as e:
        (log or _log).warning("NVML did not give the driver version: %s", e)
        return ""
    finally:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass


def _text(value: str | bytes) -> str:
    # Older nvidia-ml-py releases return bytes.
    return value.decode() if isinstance(value, bytes) else value


def load_inventory(value: object, log: logging.Logger | None = None) -> list[Gpu]:
    """The inventory from a setting: "nvml", a JSON list (text) or a list."""
    if isinstance(value, str):
        text = value.strip()
        if text.lower() == "nvml":
            return inventory_from_nvml(log)
        try:
            value = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(
                f'The GPU inventory {text!r} is neither "nvml" nor a JSON list ({e.msg}).'
            ) from None
    return inventory_from_config(value)


def inventory_from_env(
    env: dict[str, str] | None = None, log: logging.Logger | None = None
) -> list[Gpu] | None:
    """The inventory named by CUDASPAWNER_GPU_INVENTORY, or None when it is not set."""
    value = setting(INVENTORY_ENV, env)
    return load_inventory(value, log) if value else None
