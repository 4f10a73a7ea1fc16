"""One background thread that samples the GPUs and publishes a ready-made status document.

Every client of the server reads the same latest snapshot, so the number of open browser tabs
does not change how often the driver is asked. The thread also keeps a bounded history per GPU
and pre-serialises it (one JSON fragment per value, joined per sample), so that an HTTP handler
only hands out bytes and never calls the driver on the event loop.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields

from .backend import STATE_MESSAGES, GpuBackend, GpuReading, GpuUnavailable, with_detail
from .devices import declares_no_gpu, select_visible
from .processes import ProcessResolver
from .slices import as_slices, named_slices

log = logging.getLogger(__name__)

MIN_INTERVAL = 0.2  # seconds; faster sampling costs CPU and tells the user nothing new
HISTORY_SERIES = ("utilization_gpu", "memory_used", "temperature", "power_draw")
_SCALAR_FIELDS = tuple(f.name for f in fields(GpuReading) if f.name not in ("mig", "processes"))


@dataclass(frozen=True)
class Snapshot:
    """What the handlers serve: the status document and its two JSON encodings."""

    document: dict
    json_without_history: bytes
    json_with_history: bytes


def _encode(document: dict, history_json: str | None) -> bytes:
    body = json.dumps(document, separators=(",", ":"))
    if history_json is None:
        return body.encode()
    return (body[:-1] + ',"history":' + history_json + "}").encode()


def gpu_document(reading: GpuReading, resolver: ProcessResolver) -> dict:
    """The status endpoint's object for one GPU."""
    gpu = {name: getattr(reading, name) for name in _SCALAR_FIELDS}
    gpu["mig"] = (
        None
        if reading.mig is None
        else [
            {
                "index": m.index,
                "uuid": m.uuid,
                "name": m.name,
                "memory_used": m.memory_used,
                "memory_total": m.memory_total,
            }
            for m in reading.mig
        ]
    )
    gpu["processes"], gpu["foreign_processes"] = resolver.split(reading.processes)
    return gpu


class History:
    """Bounded per-GPU series, kept as JSON fragments so that publishing is a string join."""

    def __init__(self, length: int) -> None:
        self.length = length
        self._series: dict[str, dict[str, deque[str]]] = {}

    def add(self, t: float, readings: list[GpuReading]) -> None:
        stamp = format(t, ".3f")
        for reading in readings:
            series = self._series.get(reading.uuid)
            if series is None:
                series = {name: deque(maxlen=self.length) for name in ("t", *HISTORY_SERIES)}
                self._series[reading.uuid] = series
            series["t"].append(stamp)
            for name in HISTORY_SERIES:
                series[name].append(json.dumps(getattr(reading, name)))

    def to_json(self) -> str:
        parts = []
        for uuid, series in self._series.items():
            body = ",".join(f'"{name}":[{",".join(values)}]' for name, values in series.items())
            parts.append(f"{json.dumps(uuid)}:{{{body}}}")
        return "{" + ",".join(parts) + "}"

    def clear(self) -> None:
        self._series.clear()


class GpuSampler:
    """Samples a backend every ``interval`` seconds in one daemon thread."""

    def __init__(
        self,
        backend: GpuBackend,
        interval: float = 1.0,
        history_seconds: float = 300.0,
        environ: Mapping[str, str] | None = None,
        on_sample: Callable[[list[GpuReading]], None] | None = None,
        retry_seconds: float = 60.0,
        proc_root: str = "/proc",
    ) -> None:
        self.backend = backend
        self.interval = max(float(interval), MIN_INTERVAL)
        self.history = History(max(1, math.ceil(history_seconds / self.interval)))
        environ = environ if environ is not None else {}
        self.nvidia_visible_devices = environ.get("NVIDIA_VISIBLE_DEVICES")
        self.cuda_visible_devices = environ.get("CUDA_VISIBLE_DEVICES")
        self.slices = named_slices(self.nvidia_visible_devices)
        self.on_sample = on_sample
        self.retry_seconds = retry_seconds
        self.resolver = ProcessResolver(
            proc_root, getattr(backend, "processes_hold_device_files", True)
        )
        self.cpu_seconds = 0.0  # CPU time the thread has used, for the benchmark and logs
        self.samples = 0
        self._stop = threading.Event()
        self.first_result = threading.Event()  # set once the thread has published anything
        self._thread: threading.Thread | None = None
        self._indices: list[int] | None = None
        self._read_failing = False
        self._versions: tuple[str | None, str | None] = (None, None)
        self.snapshot = self._publish("ok", "Reading the GPUs for the first time.", None, [])

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="gpu-sampler", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and release the backend; returns within ``timeout`` seconds."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                deadline = time.monotonic() + self.interval
                if self._indices is None and not self._open():
                    self.first_result.set()
                    self._stop.wait(self.retry_seconds)
                    continue
                self.sample_once()
                self.first_result.set()
                self.cpu_seconds = time.thread_time()
                self._stop.wait(max(0.0, deadline - time.monotonic()))
        finally:
            if self._indices is not None:
                self.backend.close()
            self.cpu_seconds = time.thread_time()

    def _fail(self, state: str, message: str) -> None:
        self.history.clear()
        self._export([])
        self.snapshot = self._publish(state, message, time.time(), [])

    def _open(self) -> bool:
        """Open the backend and work out the visible devices; publish a state if that fails."""
        if declares_no_gpu(self.nvidia_visible_devices):
            self._fail("no_gpu", STATE_MESSAGES["no_gpu"])
            return False
        try:
            devices = self.backend.open()
        except GpuUnavailable as e:
            log.info("GPU status unavailable: %s", e.message)
            self._fail(e.state, e.message)
            return False
        except Exception as e:  # a backend bug must not kill the thread; report it instead
            log.exception("Opening the GPU backend failed")
            self._fail("error", with_detail(STATE_MESSAGES["error"], str(e)))
            return False
        visibility = select_visible(devices, self.nvidia_visible_devices, self.cuda_visible_devices)
        if visibility.state != "ok":
            self.backend.close()
            self._fail(
                visibility.state, with_detail(STATE_MESSAGES[visibility.state], visibility.detail)
            )
            return False
        self._indices = list(visibility.indices)
        self._versions = self.backend.versions()
        return True

    def sample_once(self) -> Snapshot:
        """Take one sample and publish it (the thread calls this; tests may too)."""
        if self._indices is None and not self._open():
            return self.snapshot
        now = time.time()
        try:
            readings = as_slices(self.backend.read(self._indices or []), self.slices)
        except Exception as e:  # report, keep the thread alive, try again next tick
            if not self._read_failing:  # log the change, not every second of an outage
                log.warning("Reading the GPUs failed: %s", e)
            self._read_failing = True
            self._fail("error", with_detail(STATE_MESSAGES["error"], str(e)))
            return self.snapshot
        if self._read_failing:
            log.info("Reading the GPUs works again.")
            self._read_failing = False
        self.history.add(now, readings)
        self._export(readings)  # before publishing: a client that sees a sample sees its metrics
        self.snapshot = self._publish("ok", "", now, readings)
        self.samples += 1
        return self.snapshot

    def _export(self, readings: list[GpuReading]) -> None:
        if self.on_sample:
            try:
                self.on_sample(readings)
            except Exception:  # metrics export must never stop sampling
                log.exception("Exporting GPU metrics failed")

    def _publish(
        self, state: str, message: str, sampled_at: float | None, readings: list[GpuReading]
    ) -> Snapshot:
        driver, cuda = self._versions
        document = {
            "state": state,
            "message": message,
            "backend": self.backend.name,
            "driver_version": driver,
            "cuda_driver_version": cuda,
            "sampled_at": sampled_at,
            "interval": self.interval,
            "gpus": [gpu_document(r, self.resolver) for r in readings],
        }
        return Snapshot(
            document,
            _encode(document, None),
            _encode(document, self.history.to_json()),
        )
