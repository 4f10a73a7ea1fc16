"""Which devices belong to this server: NVIDIA_VISIBLE_DEVICES and CUDA_VISIBLE_DEVICES.

Pure functions of the device list and the two variables' values, so that the rules are tested
without a GPU. The rules, in order:

1. ``NVIDIA_VISIBLE_DEVICES`` (read by the NVIDIA container runtime): unset or ``all`` keeps every
   device; ``void``, ``none`` or empty means no GPU; otherwise a comma list of indices, GPU UUIDs,
   MIG UUIDs or ``gpu:mig`` pairs. Inside a container the runtime has already hidden the other
   GPUs and renumbered the rest from 0, so host indices such as ``2,3`` do not name the devices the
   driver shows there: when an index is not among the devices and the driver shows exactly as
   many devices as were listed, the list is taken to be already applied.
2. ``CUDA_VISIBLE_DEVICES`` then narrows the result like CUDA does: positions in the list left by
   step 1 or (prefixes of) UUIDs, read up to the first entry that names no device; empty or
   ``-1`` first means no GPU. Positions assume PCI bus order (``CUDA_DEVICE_ORDER=PCI_BUS_ID``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .backend import DeviceIdentity


@dataclass(frozen=True)
class Visibility:
    """The devices this server may show; ``state`` is ``ok``, ``no_gpu`` or ``no_devices``."""

    state: str
    indices: tuple[int, ...] = ()
    detail: str = ""


def _split(value: str) -> list[str]:
    return [token.strip() for token in value.split(",") if token.strip()]


def _match_nvidia_token(token: str, devices: Sequence[DeviceIdentity]) -> DeviceIdentity | None:
    lowered = token.lower()
    for device in devices:
        if lowered.startswith("gpu-") and device.uuid.lower() == lowered:
            return device
        if lowered.startswith("mig-") and lowered in (u.lower() for u in device.mig_uuids):
            return device
    head = token.split(":", 1)[0]  # "gpu:mig" pairs name the parent GPU
    if head.isdigit():
        for device in devices:
            if device.index == int(head):
                return device
    return None


def _apply_nvidia(
    value: str | None, devices: Sequence[DeviceIdentity]
) -> tuple[list[DeviceIdentity], str, str]:
    """Return (devices, state, detail) after NVIDIA_VISIBLE_DEVICES."""
    if value is None or value.strip().lower() == "all":
        return list(devices), "ok", ""
    tokens = _split(value)
    if not tokens or tokens[0].lower() in ("void", "none"):
        return [], "no_gpu", ""
    chosen: list[DeviceIdentity] = []
    missing: list[str] = []
    for token in tokens:
        device = _match_nvidia_token(token, devices)
        if device is None:
            missing.append(token)
        elif device not in chosen:
            chosen.append(device)
    if not missing:
        return chosen, "ok", ""
    only_indices = all(t.split(":", 1)[0].isdigit() for t in tokens)
    if only_indices and len(devices) == len({t.split(":", 1)[0] for t in tokens}):
        # The container runtime already applied the list and renumbered the devices.
        return list(devices), "ok", ""
    if chosen:
        return chosen, "ok", ""
    detail = f"NVIDIA_VISIBLE_DEVICES names {', '.join(missing)}, which the driver does not show"
    return [], "no_devices", detail


def _apply_cuda(
    value: str | None, devices: list[DeviceIdentity]
) -> tuple[list[DeviceIdentity], str, str]:
    """Return (devices, state, detail) after CUDA_VISIBLE_DEVICES."""
    if value is None:
        return devices, "ok", ""
    chosen: list[DeviceIdentity] = []
    for token in _split(value):
        lowered = token.lower()
        if token.isdigit() and int(token) < len(devices):
            device = devices[int(token)]
        elif lowered.startswith(("gpu-", "mig-")):
            matches = [
                d
                for d in devices
                if d.uuid.lower().startswith(lowered)
                or any(u.lower().startswith(lowered) for u in d.mig_uuids)
            ]
            if len(matches) != 1:
                break
            device = matches[0]
        else:
            break  # CUDA stops reading at the first entry that names no device
        if device not in chosen:
            chosen.append(device)
    if not chosen:
        return [], "no_gpu", "CUDA_VISIBLE_DEVICES hides every GPU of this server"
    return chosen, "ok", ""


def select_visible(
    devices: Sequence[DeviceIdentity],
    nvidia_visible_devices: str | None,
    cuda_visible_devices: str | None,
) -> Visibility:
    """Apply both variables to the devices the driver shows; see the module docstring."""
    chosen, state, detail = _apply_nvidia(nvidia_visible_devices, devices)
    if state == "ok":
        chosen, state, detail = _apply_cuda(cuda_visible_devices, chosen)
    return Visibility(state, tuple(d.index for d in chosen), detail)


def declares_no_gpu(nvidia_visible_devices: str | None) -> bool:
    """True when NVIDIA_VISIBLE_DEVICES alone says that no GPU is assigned (no driver needed)."""
    if nvidia_visible_devices is None:
        return False
    tokens = _split(nvidia_visible_devices)
    return not tokens or tokens[0].lower() in ("void", "none")
