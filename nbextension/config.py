"""Configuration of the GPU extension (the ``GpuMonitor`` section) and the backend it selects."""

from __future__ import annotations

import os
import sys

from traitlets import Bool, CaselessStrEnum, Dict, Float, Unicode, default
from traitlets.config import Configurable

from .backend import DeviceIdentity, GpuBackend, GpuReading, GpuUnavailable

BACKEND_ENV = "CUDASPAWNER_GPU_BACKEND"
SIMULATED_ENV = "CUDASPAWNER_SIMULATED_GPUS"
BACKENDS = ("nvml", "simulated")


class GpuMonitor(Configurable):
    """Settings of the GPU status, verification and metrics extension."""

    backend = CaselessStrEnum(
        BACKENDS,
        help=f"""Where GPU status comes from: 'nvml' (the NVIDIA driver, through nvidia-ml-py) or
        'simulated' (GPUs described in a JSON document, for tests and demos). Defaults to the
        environment variable {BACKEND_ENV}, else 'nvml'.""",
    ).tag(config=True)

    @default("backend")
    def _backend_default(self) -> str:
        value = os.environ.get(BACKEND_ENV, "nvml").strip().lower() or "nvml"
        if value not in BACKENDS:
            self.log.warning("%s=%r is not one of %s; using nvml.", BACKEND_ENV, value, BACKENDS)
            return "nvml"
        return value

    simulated_gpus = Unicode(
        help=f"""Path of a JSON file describing the simulated GPUs (format: the README's
        "Simulated GPUs"). Defaults to the environment variable {SIMULATED_ENV}.""",
    ).tag(config=True)

    @default("simulated_gpus")
    def _simulated_gpus_default(self) -> str:
        return os.environ.get(SIMULATED_ENV, "")

    simulated_description = Dict(
        help="""The simulated GPUs as a dict in the same format as the JSON file; when set it
        takes precedence over simulated_gpus.""",
    ).tag(config=True)

    sample_interval = Float(
        1.0,
        help="""Seconds between two GPU samples. One thread samples for all clients; values
        below 0.2 are raised to 0.2.""",
    ).tag(config=True)

    history_seconds = Float(
        300.0, help="How many seconds of per-GPU history the status endpoint returns."
    ).tag(config=True)

    verify_at_start = Bool(
        True,
        help="""Run the GPU verification once when the server starts, in the background (it
        never delays the server's readiness).""",
    ).tag(config=True)

    verify_timeout = Float(
        180.0,
        help="""Seconds the verification process may run before it is stopped and reported as
        failed.""",
    ).tag(config=True)

    verify_min_interval = Float(
        30.0,
        help="""Seconds after a verification finishes before a user may start another one;
        earlier requests are answered 429 with the time it is allowed again.""",
    ).tag(config=True)

    verify_python = Unicode(
        help="""Python interpreter that runs the verification (it must have PyTorch for the
        GPU checks). Defaults to the interpreter running this server, which is the
        notebook's.""",
    ).tag(config=True)

    @default("verify_python")
    def _verify_python_default(self) -> str:
        return sys.executable


class UnusableBackend(GpuBackend):
    """Stands in for a backend whose configuration is wrong, so the panel shows why."""

    def __init__(self, name: str, message: str) -> None:
        self.name = name
        self.message = message

    def open(self) -> list[DeviceIdentity]:
        raise GpuUnavailable("error", self.message)

    def read(self, indices: list[int]) -> list[GpuReading]:
        return []

    def versions(self) -> tuple[str | None, str | None]:
        return None, None


def make_backend(config: GpuMonitor) -> GpuBackend:
    """The backend the configuration asks for; configuration mistakes become an error state."""
    if config.backend == "nvml":
        from .nvml import NvmlBackend

        return NvmlBackend()
    from .simulated import SimulatedBackend, SimulatedDescriptionError, load_description

    try:
        if config.simulated_description:
            return SimulatedBackend(dict(config.simulated_description))
        if not config.simulated_gpus:
            return UnusableBackend(
                "simulated",
                f"The simulated GPU backend needs a description: set {SIMULATED_ENV} to a JSON "
                "file or configure GpuMonitor.simulated_description.",
            )
        return SimulatedBackend(load_description(config.simulated_gpus))
    except SimulatedDescriptionError as e:
        return UnusableBackend("simulated", str(e))
