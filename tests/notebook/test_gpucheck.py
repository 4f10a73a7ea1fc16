"""The device-machine check: its nvidia-smi comparison, and how it degrades without a GPU."""

from __future__ import annotations

import ctypes.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.device import gpucheck
from tests.device.gpucheck import compare, parse_smi_csv, reclaim_rows

REPO = Path(__file__).resolve().parents[2]
GIB = 1 << 30

SMI_OUTPUT = """\
0, GPU-aaaa, NVIDIA H100 80GB HBM3, 81559, 4, 31, 71.52, 700.00, 0
1, GPU-bbbb, NVIDIA H100 80GB HBM3, 81559, 1030, 44, [N/A], 700.00, [Not Supported]
"""


def gpu(index, uuid, **fields):
    base = dict(
        index=index, uuid=uuid, name="NVIDIA H100 80GB HBM3", memory_total=81559 * (1 << 20),
        memory_used=4 * (1 << 20), temperature=31, power_draw=70.1, power_limit=700.0,
        utilization_gpu=0,
    )  # fmt: skip
    return {**base, **fields}


def test_nvidia_smi_csv_is_parsed_with_unavailable_values_as_none():
    rows = parse_smi_csv(SMI_OUTPUT)
    assert [r["uuid"] for r in rows] == ["GPU-aaaa", "GPU-bbbb"]
    assert rows[0]["memory_total_mib"] == 81559 and rows[0]["power_draw"] == 71.52
    assert rows[1]["power_draw"] is None and rows[1]["utilization_gpu"] is None


def test_comparison_accepts_drift_and_flags_real_differences():
    status = {
        "gpus": [
            gpu(0, "GPU-aaaa"),
            gpu(
                1,
                "GPU-bbbb",
                temperature=60,
                memory_used=1030 * (1 << 20) + 2 * GIB,
                power_draw=None,
                utilization_gpu=None,
            ),
        ]  # fmt: skip
    }
    verdicts = {(c.gpu, c.field): c.verdict for c in compare(status, parse_smi_csv(SMI_OUTPUT))}
    assert {v for (g, _), v in verdicts.items() if g == 0} == {"match"}  # power 70.1 vs 71.52
    assert verdicts[(1, "temperature")] == "DIFFERS"  # 60 vs 44 C
    assert verdicts[(1, "memory_used")] == "DIFFERS"  # 2 GiB apart
    assert verdicts[(1, "power_draw")] == "n/a" and verdicts[(1, "utilization_gpu")] == "n/a"


def test_gpu_unknown_to_nvidia_smi_is_flagged():
    results = compare({"gpus": [gpu(0, "GPU-zzzz")]}, parse_smi_csv(SMI_OUTPUT))
    assert [(c.field, c.verdict) for c in results] == [("uuid", "DIFFERS")]


def _history(*series):
    return {
        f"GPU-{i}": {"t": list(range(len(u))), "utilization_gpu": u} for i, u in enumerate(series)
    }


def test_reclaim_reading_sees_the_idle_card_idle_and_the_load_busy():
    idle = {"gpus": [gpu(0, "GPU-aaaa", utilization_gpu=0), gpu(1, "GPU-bbbb", utilization_gpu=3)]}
    rows, problems = reclaim_rows(idle, _history([0, 0, 97, 100], [0, None, 1, 0]))
    assert problems == 0 and [r[1] for r in rows] == ["pass", "pass"]
    assert "busiest 3%" in rows[0][2] and "peak busiest 100%" in rows[1][2]
    # A card busy before the load, or a load the readings never showed, is a failure.
    busy = {"gpus": [gpu(0, "GPU-aaaa", utilization_gpu=40)]}
    rows, problems = reclaim_rows(busy, _history([0, None, 2]))
    assert problems == 2 and [r[1] for r in rows] == ["fail", "fail"]
    # Unreadable utilisation is no reading at all, never "idle".
    unreadable = {"gpus": [gpu(0, "GPU-aaaa", utilization_gpu=None)]}
    assert reclaim_rows(unreadable, _history([None]))[1] == 2


def test_hub_inventory_is_compared_with_nvidia_smi(monkeypatch):
    from spawner.gpu.allocator import Gpu

    name = "NVIDIA H100 80GB HBM3"
    smi = parse_smi_csv(SMI_OUTPUT)
    monkeypatch.setattr(gpucheck, "run_nvidia_smi", lambda: (smi, ""))
    nvml = [Gpu(index=0, id="GPU-aaaa", name=name), Gpu(index=1, id="GPU-bbbb", name=name)]
    monkeypatch.setattr("spawner.gpu.inventory.inventory_from_nvml", lambda: nvml)
    rows, problems = gpucheck.hub_inventory_step()
    assert problems == 0 and rows[0][1] == "pass" and "2 GPU(s)" in rows[0][2]
    monkeypatch.setattr("spawner.gpu.inventory.inventory_from_nvml", lambda: nvml[:1])
    rows, problems = gpucheck.hub_inventory_step()
    assert problems == 1 and rows[0][1] == "fail" and "GPU-bbbb" in rows[0][2]


def run_check(*args):
    env = {**os.environ, "PYTHON": sys.executable}
    env.pop("NVIDIA_VISIBLE_DEVICES", None)
    return subprocess.run(
        ["bash", str(REPO / "scripts" / "gpu-check.sh"), *args],
        capture_output=True, text=True, timeout=280, env=env,
    )  # fmt: skip


HAS_DRIVER = ctypes.util.find_library("nvidia-ml") is not None


@pytest.mark.skipif(HAS_DRIVER, reason="an NVIDIA driver is present; this shows the no-GPU path")
def test_check_without_a_gpu_says_so_plainly_and_exits_2(tmp_path):
    done = run_check("--cpu-seconds", "0", "--json", str(tmp_path / "out.json"))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert "No GPU here: The NVIDIA management library" in done.stdout
    assert "verification          no_gpu" in done.stdout  # the CPU verification still ran
    assert (tmp_path / "out.json").exists()


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_DRIVER, reason="needs a real NVIDIA GPU and driver (none here)")
def test_check_on_a_real_gpu_passes():
    done = run_check("--cpu-seconds", "5")
    assert done.returncode == 0, done.stdout + done.stderr
