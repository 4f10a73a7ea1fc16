"""Prometheus export of the samples, with dcgm-exporter's metric names, units and labels.

Existing GPU dashboards built for dcgm-exporter work unchanged. The gauges live on
prometheus_client's default registry, which jupyter_server serves at its (authenticated)
``/metrics`` endpoint. They are set by the sampler thread after each sample, never on scrape.
A field the GPU does not support is absent rather than exported as 0.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

from prometheus_client import REGISTRY, CollectorRegistry, Gauge

from .backend import GpuReading

MIB = 1024 * 1024
LABELS = ("gpu", "UUID", "modelName", "Hostname")


def _mib(value: int | None) -> int | None:
    return None if value is None else value // MIB


def _free(r: GpuReading) -> int | None:
    if r.memory_total is None or r.memory_used is None:
        return None
    return _mib(r.memory_total - r.memory_used)


# name -> (help text as dcgm-exporter words it, value of a reading in dcgm's unit)
GAUGES: dict[str, tuple[str, Callable[[GpuReading], float | int | None]]] = {
    "DCGM_FI_DEV_GPU_UTIL": ("GPU utilization (in %).", lambda r: r.utilization_gpu),
    "DCGM_FI_DEV_MEM_COPY_UTIL": ("Memory utilization (in %).", lambda r: r.utilization_memory),
    "DCGM_FI_DEV_FB_USED": ("Framebuffer memory used (in MiB).", lambda r: _mib(r.memory_used)),
    "DCGM_FI_DEV_FB_FREE": ("Framebuffer memory free (in MiB).", _free),
    "DCGM_FI_DEV_FB_TOTAL": ("Framebuffer memory total (in MiB).", lambda r: _mib(r.memory_total)),
    "DCGM_FI_DEV_GPU_TEMP": ("GPU temperature (in C).", lambda r: r.temperature),
    "DCGM_FI_DEV_POWER_USAGE": ("Power draw (in W).", lambda r: r.power_draw),
    "DCGM_FI_DEV_POWER_MGMT_LIMIT": ("Power management limit (in W).", lambda r: r.power_limit),
    "DCGM_FI_DEV_SM_CLOCK": ("SM clock frequency (in MHz).", lambda r: r.clock_sm),
    "DCGM_FI_DEV_MEM_CLOCK": ("Memory clock frequency (in MHz).", lambda r: r.clock_memory),
    "DCGM_FI_DEV_FAN_SPEED": ("Fan speed (in %).", lambda r: r.fan),
    "DCGM_FI_DEV_PCIE_LINK_GEN": ("PCIe link generation.", lambda r: r.pcie_generation),
    "DCGM_FI_DEV_PCIE_LINK_WIDTH": ("PCIe link width (lanes).", lambda r: r.pcie_width),
}

# One set of gauges per registry: a metric name can be registered only once per process.
_gauges_by_registry: dict[int, dict[str, Gauge]] = {}
_lock = threading.Lock()


def _gauges(registry: CollectorRegistry) -> dict[str, Gauge]:
    with _lock:
        gauges = _gauges_by_registry.get(id(registry))
        if gauges is None:
            gauges = {
                name: Gauge(name, help_text, LABELS, registry=registry)
                for name, (help_text, _) in GAUGES.items()
            }
            _gauges_by_registry[id(registry)] = gauges
        return gauges


class GpuMetrics:
    """Keeps the DCGM-named gauges equal to the latest sample."""

    def __init__(self, registry: CollectorRegistry = REGISTRY, hostname: str | None = None):
        self.gauges = _gauges(registry)
        self.hostname = hostname or socket.gethostname()
        self._exported: set[tuple[str, tuple[str, ...]]] = set()

    def update(self, readings: list[GpuReading]) -> None:
        """Set every gauge from ``readings``; drop series of fields or GPUs no longer present."""
        exported = set()
        for reading in readings:
            labels = (str(reading.index), reading.uuid, reading.name, self.hostname)
            for name, (_, value_of) in GAUGES.items():
                value = value_of(reading)
                if value is not None:
                    self.gauges[name].labels(*labels).set(value)
                    exported.add((name, labels))
        for name, labels in self._exported - exported:
            try:
                self.gauges[name].remove(*labels)
            except KeyError:
                pass  # already gone
        self._exported = exported

    def clear(self) -> None:
        """Remove every series this exporter set (the server is stopping)."""
        self.update([])
