"""Wiring: build the sampler, metrics and verifier from the configuration and attach them."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from .config import GpuMonitor, make_backend
from .reclaim import ReclaimNotice
from .sampler import GpuSampler
from .usage import UsageNotice
from .verify import Verifier

log = logging.getLogger(__name__)
FIRST_SAMPLE_WAIT = 10.0  # seconds a verification waits for the GPU count it should expect


class GpuExtension:
    """The extension's state for one server: one sampler, one metrics exporter, one verifier."""

    def __init__(self, config: GpuMonitor, environ: Mapping[str, str], registry: Any = None):
        from .metrics import GpuMetrics  # prometheus_client: only where a server runs

        self.config = config
        self.metrics = GpuMetrics(registry) if registry is not None else GpuMetrics()
        self.sampler = GpuSampler(
            make_backend(config),
            interval=config.sample_interval,
            history_seconds=config.history_seconds,
            environ=environ,
            on_sample=self.metrics.update,
        )
        self.reclaim = ReclaimNotice()
        self.usage = UsageNotice()  # the owner's GPU-hours, as the hub's service sends them
        self.verifier = Verifier(
            python=config.verify_python,
            timeout=config.verify_timeout,
            min_interval=config.verify_min_interval,
            expected_gpus=self.expected_gpus,
        )

    def expected_gpus(self) -> int | None:
        """How many GPUs CUDA should see, from the driver's view; None when it is unknown.

        Simulated GPUs are not real hardware, so CUDA is not expected to see them. Blocks until
        the first sample (at most FIRST_SAMPLE_WAIT s): call it from a thread.
        """
        if self.sampler.backend.name != "nvml":
            return None
        self.sampler.first_result.wait(FIRST_SAMPLE_WAIT)
        document = self.sampler.snapshot.document
        if any(gpu["mig"] is not None for gpu in document["gpus"]):
            return None  # CUDA enumerates MIG instances, not GPUs: no count to hold it to
        if document["state"] == "ok" and document["sampled_at"] is not None:
            return len(document["gpus"])
        return 0 if document["state"] == "no_gpu" else None

    def start(self) -> None:
        self.sampler.start()

    def stop(self) -> None:
        self.verifier.stop()
        self.sampler.stop(timeout=2.0)
        self.metrics.clear()
