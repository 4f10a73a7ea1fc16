"""The sampler over the simulated backend: snapshots, history, failures and the thread's life."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

from nbextension.sampler import MIN_INTERVAL, GpuSampler
from nbextension.simulated import (
    SimulatedBackend,
    SimulatedDescriptionError,
    load_description,
    validate_description,
)
from tests.notebook.simulated_gpus import FIXTURES, two_gpus


def sampler_for(description: dict, **kwargs) -> GpuSampler:
    return GpuSampler(SimulatedBackend(description), **kwargs)


def decoded(snapshot, history: bool = True) -> dict:
    return json.loads(snapshot.json_with_history if history else snapshot.json_without_history)


def test_snapshot_carries_every_field_of_the_description():
    description = two_gpus()
    status = decoded(sampler_for(description).sample_once())
    assert status["state"] == "ok" and status["message"] == ""
    assert status["driver_version"] == description["driver_version"]
    assert status["cuda_driver_version"] == description["cuda_driver_version"]
    for gpu, expected in zip(status["gpus"], description["gpus"], strict=True):
        for name, value in expected.items():
            if name != "processes":
                assert gpu[name] == value, name


def test_unsupported_fields_are_null_not_errors():
    description = two_gpus()
    description["gpus"][0]["unsupported"] = ["power_draw", "temperature", "pcie_width"]
    gpu = decoded(sampler_for(description).sample_once())["gpus"][0]
    assert gpu["power_draw"] is None and gpu["temperature"] is None and gpu["pcie_width"] is None
    assert gpu["utilization_gpu"] == description["gpus"][0]["utilization_gpu"]


def test_history_is_bounded_by_history_seconds_over_interval():
    sampler = sampler_for(two_gpus(), interval=1.0, history_seconds=3)
    for _ in range(5):
        snapshot = sampler.sample_once()
    history = decoded(snapshot)["history"]
    uuid = two_gpus()["gpus"][0]["uuid"]
    assert set(history) == {g["uuid"] for g in two_gpus()["gpus"]}
    assert set(history[uuid]) == {
        "t",
        "utilization_gpu",
        "memory_used",
        "temperature",
        "power_draw",
    }
    assert all(len(series) == 3 for series in history[uuid].values())
    assert history[uuid]["t"] == sorted(history[uuid]["t"])


def test_listed_values_cycle_one_per_sample_into_the_history():
    description = two_gpus()
    description["gpus"][0]["utilization_gpu"] = [10, 50, 90]
    sampler = sampler_for(description)
    seen = [decoded(sampler.sample_once())["gpus"][0]["utilization_gpu"] for _ in range(4)]
    assert seen == [10, 50, 90, 10]
    uuid = description["gpus"][0]["uuid"]
    assert decoded(sampler.snapshot)["history"][uuid]["utilization_gpu"] == seen


def test_status_without_history_omits_it_and_keeps_everything_else():
    snapshot = sampler_for(two_gpus()).sample_once()
    full, cheap = decoded(snapshot), decoded(snapshot, history=False)
    assert "history" not in cheap
    full.pop("history")
    assert full == cheap


def test_interval_is_clamped_to_the_minimum():
    assert sampler_for(two_gpus(), interval=0.01).interval == MIN_INTERVAL


@pytest.mark.parametrize(
    "state", ["library_not_found", "driver_not_loaded", "no_devices", "no_permission", "error"]
)
def test_init_failure_becomes_a_state_with_a_sentence(state):
    status = decoded(sampler_for({"init_error": state}).sample_once())
    assert status["state"] == state
    assert status["gpus"] == [] and status["history"] == {}
    assert status["message"].endswith(".") and len(status["message"]) > 20


def test_void_visible_devices_is_no_gpu_without_opening_the_backend():
    class Unopenable(SimulatedBackend):
        def open(self):
            raise AssertionError("a server without GPUs must not open the driver")

    sampler = GpuSampler(Unopenable(two_gpus()), environ={"NVIDIA_VISIBLE_DEVICES": "void"})
    status = decoded(sampler.sample_once())
    assert status["state"] == "no_gpu"
    assert status["message"] == "No GPU is assigned to this server."


def test_read_error_reports_error_state_and_recovers_on_the_next_sample():
    description = two_gpus()
    description["read_error"] = "GPU 0 has fallen off the bus"
    backend = SimulatedBackend(description)
    sampler = GpuSampler(backend)
    status = decoded(sampler.sample_once())
    assert status["state"] == "error" and "fallen off the bus" in status["message"]
    del description["read_error"]
    assert decoded(sampler.sample_once())["state"] == "ok"


def test_processes_split_into_ours_and_foreign():
    gpu = decoded(sampler_for(two_gpus()).sample_once())["gpus"][0]
    assert [p["pid"] for p in gpu["processes"]] == [os.getpid()]
    assert gpu["processes"][0]["memory_used"] == 2147483648
    assert "python" in gpu["processes"][0]["command"] or "pytest" in gpu["processes"][0]["command"]
    assert gpu["foreign_processes"] == {"count": 1, "memory_used": 1073741824}


def test_mig_instances_are_listed():
    description = two_gpus()
    description["gpus"][1]["mig"] = [
        {"index": 0, "uuid": "MIG-aaaa", "name": "1g.10gb", "memory_used": 5, "memory_total": 10},
        {
            "index": 1,
            "uuid": "MIG-bbbb",
            "name": "3g.40gb",
            "memory_used": None,
            "memory_total": 40,
        },
    ]
    status = decoded(sampler_for(description).sample_once())
    assert status["gpus"][0]["mig"] is None
    assert status["gpus"][1]["mig"] == description["gpus"][1]["mig"]


def test_thread_samples_in_the_background_and_stops_promptly():
    sampler = sampler_for(two_gpus(), interval=0.2)
    sampler.start()
    try:
        assert sampler.first_result.wait(5)
        deadline = time.monotonic() + 5
        while sampler.samples < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sampler.samples >= 3
    finally:
        started = time.monotonic()
        sampler.stop()
    assert time.monotonic() - started < 1.0
    assert not sampler.running
    assert "gpu-sampler" not in [t.name for t in threading.enumerate()]


def test_description_file_errors_are_sentences(tmp_path):
    assert load_description(FIXTURES / "two-gpus.json")["gpus"]
    with pytest.raises(SimulatedDescriptionError, match="could not be read"):
        load_description(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(SimulatedDescriptionError, match="not valid JSON"):
        load_description(tmp_path / "bad.json")
    with pytest.raises(SimulatedDescriptionError, match="utilisation"):
        validate_description({"gpus": [{"utilisation": 3}]})
    with pytest.raises(SimulatedDescriptionError, match="init_error"):
        validate_description({"init_error": "on_fire"})
