"""Device-machine check: the extension's status and verification against a real GPU.

Run by ``scripts/gpu-check.sh`` (``python -m tests.device.gpucheck``); a developer's tool, not
shipped in the wheel. It needs no jupyter_server,
traitlets or prometheus_client: only the backend, sampler and verification modules, pynvml and
torch. Steps:

1. one status sample through NVML, compared field by field with ``nvidia-smi``;
2. the sampler thread's CPU cost with the real driver at 1 Hz;
3. the full verification worker on the GPU(s) (the NCCL all-reduce also on a single GPU), while
   the sampler records at 5 Hz, to show that it sees the load;
4. torch's own bfloat16 8192x8192 product timed in this process (CUDA events, median of 10 after
   warm-up), against which the worker's TFLOP/s must be within 10 %;
5. the hub side on the same driver: the inventory the hub reads through NVML (UUIDs and names,
   the ids its GPU labels carry) against nvidia-smi, and the idle-GPU reclaim's reading (the
   busiest GPU's utilisation) of the idle card and of the sampler's record of the load;
6. one summary table. Exit status 0: all good; 1: something failed; 2: no GPU here.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from nbextension.nvml import NvmlBackend
from nbextension.sampler import GpuSampler
from nbextension.verify import run_worker, summarize

MIB = 1 << 20
SMI_FIELDS = (
    "index,uuid,name,memory.total,memory.used,temperature.gpu,power.draw,power.limit,"
    "utilization.gpu"
)


@dataclass(frozen=True)
class Comparison:
    """One field of one GPU: our value, nvidia-smi's, and whether they agree."""

    gpu: int
    field: str
    ours: object
    smi: object
    verdict: str  # "match", "DIFFERS" or "n/a"


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None  # "[N/A]", "[Not Supported]"


def parse_smi_csv(text: str) -> list[dict]:
    """Rows of ``nvidia-smi --query-gpu=<SMI_FIELDS> --format=csv,noheader,nounits``."""
    rows = []
    for cells in csv.reader(io.StringIO(text), skipinitialspace=True):
        if len(cells) != 9:
            continue
        index, uuid, name, total, used, temp, draw, limit, util = (c.strip() for c in cells)
        rows.append(
            {
                "index": int(index),
                "uuid": uuid,
                "name": name,
                "memory_total_mib": _number(total),
                "memory_used_mib": _number(used),
                "temperature": _number(temp),
                "power_draw": _number(draw),
                "power_limit": _number(limit),
                "utilization_gpu": _number(util),
            }
        )
    return rows


def _within(tolerance: Callable[[float, float], bool]) -> Callable[[object, object], bool]:
    def agree(ours: object, smi: object) -> bool:
        return (
            isinstance(ours, int | float) and isinstance(smi, int | float) and tolerance(ours, smi)
        )

    return agree


def _mib(value: object) -> object:
    return value / MIB if isinstance(value, int | float) else value


# (our field, nvidia-smi field, convert ours to smi's unit, agreement test). Memory "used" and
# power drift between two reads and NVML's memory API versions count reserved memory
# differently, hence the tolerances.
FIELD_RULES = [
    ("uuid", "uuid", lambda v: v, lambda a, b: a == b),
    ("name", "name", lambda v: v, lambda a, b: a == b),
    ("memory_total", "memory_total_mib", _mib, _within(lambda a, b: abs(a - b) <= 0.02 * b + 1)),
    ("memory_used", "memory_used_mib", _mib, _within(lambda a, b: abs(a - b) <= 1024)),
    ("temperature", "temperature", lambda v: v, _within(lambda a, b: abs(a - b) <= 3)),
    ("power_draw", "power_draw", lambda v: v, _within(lambda a, b: abs(a - b) <= 0.3 * b + 30)),
    ("power_limit", "power_limit", lambda v: v, _within(lambda a, b: abs(a - b) <= 1)),
    ("utilization_gpu", "utilization_gpu", lambda v: v, _within(lambda a, b: abs(a - b) <= 20)),
]


def compare(status: dict, smi_rows: list[dict]) -> list[Comparison]:
    """Compare our status document's GPUs with nvidia-smi's rows, matched by UUID."""
    by_uuid = {row["uuid"]: row for row in smi_rows}
    results = []
    for gpu in status["gpus"]:
        row = by_uuid.get(gpu["uuid"])
        if row is None:
            results.append(Comparison(gpu["index"], "uuid", gpu["uuid"], None, "DIFFERS"))
            continue
        for ours_name, smi_name, convert, agree in FIELD_RULES:
            ours, smi = convert(gpu[ours_name]), row[smi_name]
            if ours is None and smi is None:
                verdict = "n/a"
            else:
                verdict = "match" if agree(ours, smi) else "DIFFERS"
            results.append(Comparison(gpu["index"], ours_name, ours, smi, verdict))
    return results


def run_nvidia_smi() -> tuple[list[dict] | None, str]:
    """nvidia-smi's rows, or None and a sentence saying why there are none."""
    if shutil.which("nvidia-smi") is None:
        return None, "nvidia-smi is not installed here, so there is nothing to compare with."
    try:
        done = subprocess.run(
            ["nvidia-smi", f"--query-gpu={SMI_FIELDS}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except subprocess.TimeoutExpired:
        return None, "nvidia-smi did not answer within 30 seconds."
    if done.returncode != 0:
        return None, f"nvidia-smi failed: {(done.stderr or done.stdout).strip()}"
    return parse_smi_csv(done.stdout), ""


def _table(rows: list[list[object]], header: list[str]) -> str:
    cells = [[str(c) for c in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.1f}"
    return "null" if value is None else str(value)


def measure_sampler_cpu(seconds: float) -> tuple[float, int]:
    """CPU share of one core used by the sampler thread at 1 Hz with the real driver."""
    sampler = GpuSampler(NvmlBackend(), interval=1.0, environ=os.environ)
    sampler.start()
    sampler.first_result.wait(10)
    cpu0, t0, n0 = sampler.cpu_seconds, time.monotonic(), sampler.samples
    time.sleep(seconds)
    cpu1, t1, n1 = sampler.cpu_seconds, time.monotonic(), sampler.samples
    sampler.stop()
    return (cpu1 - cpu0) / (t1 - t0), n1 - n0


Row = list[object]


def status_step(status: dict) -> tuple[list[Row], list[Comparison], int]:
    """Print the status and compare it with nvidia-smi; return summary rows and problems."""
    print(f"== Status (backend nvml): state {status['state']}. {status['message']}".rstrip())
    print(f"   driver {status['driver_version']}, CUDA driver {status['cuda_driver_version']}")
    for gpu in status["gpus"]:
        print("   " + json.dumps({k: v for k, v in gpu.items() if k != "processes"}))
    rows: list[Row] = [["status", status["state"], f"{len(status['gpus'])} GPU(s)"]]
    smi_rows, smi_note = run_nvidia_smi()
    if smi_rows is None or not status["gpus"]:
        rows.append(["nvidia-smi agreement", "skipped", smi_note or status["message"]])
        return rows, [], 0
    comparisons = compare(status, smi_rows)
    print("\n== Status vs nvidia-smi")
    table = [[c.gpu, c.field, _fmt(c.ours), _fmt(c.smi), c.verdict] for c in comparisons]
    print(_table(table, ["gpu", "field", "extension", "nvidia-smi", "verdict"]))
    differing = sum(c.verdict == "DIFFERS" for c in comparisons)
    agreeing = f"{len(comparisons) - differing}/{len(comparisons)} fields agree"
    rows.append(["nvidia-smi agreement", "fail" if differing else "pass", agreeing])
    return rows, comparisons, differing


def sampler_cost_step(seconds: float) -> tuple[list[Row], int]:
    share, samples = measure_sampler_cpu(seconds)
    detail = f"{share * 100:.3f}% of one core over {samples} samples"
    return [["sampler CPU at 1 Hz", "pass" if share < 0.01 else "fail", detail]], int(share >= 0.01)


def hub_inventory_step() -> tuple[list[Row], int]:
    """The hub's NVML inventory (spawner.gpu_inventory) against nvidia-smi's index, UUID, name."""
    from spawner.gpu.inventory import inventory_from_nvml

    smi_rows, smi_note = run_nvidia_smi()
    # nvidia-smi's query lists whole GPUs; MIG slices are checked in `image_verdict_step`.
    ours = [(g.index, g.id, g.name) for g in inventory_from_nvml() if not g.is_slice]
    if smi_rows is None:
        return [["hub inventory", "skipped", smi_note]], 0
    smi = [(r["index"], r["uuid"], r["name"]) for r in smi_rows]
    ok = ours == smi and bool(ours)
    detail = f"{len(ours)} GPU(s): " + ", ".join(
        f"{i} {uuid[:12]} {name}" for i, uuid, name in ours
    )
    if not ok:
        detail += f"; nvidia-smi has {smi}"
    return [["hub inventory vs nvidia-smi", "pass" if ok else "fail", detail]], int(not ok)


def image_verdict_step() -> tuple[list[Row], int]:
    """Issue 27, through the hub's own code: the host as the hub reads it (driver, each
    card's compute capability, MIG mode and slices; only read, never changed) and the
    verdict for the CPU image and a CUDA image built with this machine's torch."""
    from collections import Counter

    import torch

    from spawner.gpu.cuda_compat import ImageNeeds, min_driver, refusal
    from spawner.gpu.inventory import read_host

    gpus, driver = read_host("nvml")
    caps = [g.compute_capability for g in gpus if not g.is_slice]
    slices = Counter(g.mig_profile for g in gpus if g.is_slice)
    mig = ", ".join(f"{n} x {p}" for p, n in slices.items()) or "no GPU in MIG mode"
    seen = bool(driver) and bool(caps) and all(caps)
    view = f"driver {driver or '?'}; compute capability {', '.join(caps) or '?'}; {mig}"
    rows = [["hub's view of the host", "pass" if seen else "fail", view]]
    cuda = torch.version.cuda
    images = [("CPU image", ImageNeeds(None, None, ()))]
    if cuda:
        archs = tuple(torch.cuda.get_arch_list())
        images.append(
            (f"CUDA {cuda} image (this torch)", ImageNeeds(cuda, min_driver(cuda), archs))
        )
    problems = int(not seen)
    for name, needs in images:
        verdict = refusal(needs, driver, caps)
        problems += verdict is not None
        rows.append([f"{name} on this host", "runs" if verdict is None else "refused",
                     verdict or "offered on the form"])  # fmt: skip
    return rows, problems


def reclaim_rows(idle_status: dict, history: dict) -> tuple[list[Row], int]:
    """What the reclaim service would read: the idle card as idle, the load as busy."""
    try:
        from spawner.services.gpu_reclaim import ReclaimPolicy, busiest
    except ImportError as e:  # traitlets: the hub's dependency, maybe not in a GPU image
        return [["reclaim reading", "skipped", f"cannot import the reclaim service: {e}"]], 0
    threshold = ReclaimPolicy(idle_after=0, warn_for=0).threshold
    idle = busiest(idle_status["gpus"])
    steps = max((len(s["t"]) for s in history.values()), default=0)
    # One look per sample, as the service would take it from the status document.
    looks = [
        busiest(
            {"utilization_gpu": s["utilization_gpu"][i]}
            for s in history.values()
            if i < len(s["t"])
        )
        for i in range(steps)
    ]
    peak = max((v for v in looks if v is not None), default=None)
    idle_ok = idle is not None and idle < threshold
    busy_ok = peak is not None and peak >= threshold
    return [
        [
            "reclaim reads the idle card",
            "pass" if idle_ok else "fail",
            f"busiest {_pct(idle)} (idle below {threshold:g}%)",
        ],
        [
            "reclaim reads the load",
            "pass" if busy_ok else "fail",
            f"peak busiest {_pct(peak)} over {len(looks)} looks",
        ],
    ], int(not idle_ok) + int(not busy_ok)


def _pct(value: float | None) -> str:
    return "unreadable" if value is None else f"{value:g}%"


def load_rows(history: dict) -> tuple[list[Row], int]:
    """Whether the sampler saw the verification's load on each GPU."""
    rows: list[Row] = []
    problems = 0
    for uuid, series in history.items():
        util = max((v for v in series["utilization_gpu"] if v is not None), default=0)
        power = max((v for v in series["power_draw"] if v is not None), default=0)
        detail = f"peak utilisation {util}%, peak power {power:.0f} W, {len(series['t'])} samples"
        rows.append([f"sampler saw the load ({uuid[:12]})", "pass" if util > 0 else "fail", detail])
        problems += util == 0
    return rows, problems


def verification_step(
    expected: int | None, timeout: float, idle_status: dict | None
) -> tuple[list[Row], int, list[dict]]:
    """Run the full verification (all-reduce even on one GPU) while the sampler watches.

    `idle_status` (the status taken before, on the idle card) is None without a GPU: then
    nothing is watched.
    """
    watch = idle_status is not None
    watcher = GpuSampler(NvmlBackend(), interval=0.2, history_seconds=600, environ=os.environ)
    if watch:
        watcher.start()
    started = time.monotonic()
    outcome = run_worker(sys.executable, timeout, expected, nccl_min_gpus=1)
    elapsed = time.monotonic() - started
    watcher.stop()
    checks = outcome.all_checks()
    verdict, message = summarize(checks, outcome.gpu_count)
    print(f"\n== Verification ({elapsed:.1f} s): {verdict}. {message}")
    print(f"   versions: {json.dumps(outcome.versions)}")
    print(_table([[c["id"], c["status"], c["reason"]] for c in checks], ["check", "status", "why"]))
    rows: list[Row] = [["verification", verdict, f"{message} ({elapsed:.0f} s)"]]
    measured = ("_matmul_tflops", "_memory_bandwidth", "_performance", "nccl_allreduce")
    rows += [[c["id"], c["status"], c["reason"]] for c in checks if c["id"].endswith(measured)]
    problems = int(verdict == "fail")
    if watch:
        history = json.loads(watcher.snapshot.json_with_history)["history"]
        more, seen = load_rows(history)
        rows += more
        problems += seen
        more, seen = reclaim_rows(idle_status, history)
        rows += more
        problems += seen
    return rows, problems, checks


# The worker's figure must be the card's: within this share of a plain torch measurement.
THROUGHPUT_TOLERANCE = 0.10


def torch_reference_tflops(index: int, n: int = 8192) -> float:
    """bfloat16 n x n matmul TFLOP/s as a PyTorch user measures it, with nothing of ours."""
    import torch

    device = torch.device("cuda", index)
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    with torch.cuda.device(device):
        for _ in range(3):
            a @ b
        torch.cuda.synchronize()
        times = []
        for _ in range(10):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            a @ b
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
    times.sort()
    median_ms = (times[4] + times[5]) / 2
    return 2 * n**3 / (median_ms / 1e3) / 1e12


def throughput_rows(checks: list[dict]) -> tuple[list[Row], int]:
    """The worker's TFLOP/s per GPU against torch's own figure, measured right after."""
    rows: list[Row] = []
    problems = 0
    for c in checks:
        if not c["id"].endswith("_matmul_tflops") or c["status"] != "pass":
            continue
        index = int(c["id"].removeprefix("gpu").split("_")[0])
        ours, reference = c["details"]["tflops"], torch_reference_tflops(index)
        gap = abs(ours - reference) / reference
        ok = gap <= THROUGHPUT_TOLERANCE
        problems += not ok
        detail = (
            f"verification {ours:.0f} vs torch {reference:.0f} TFLOP/s "
            f"({gap * 100:.1f}% apart, allowed {THROUGHPUT_TOLERANCE * 100:.0f}%) "
            f"on {c['details'].get('gpu_name', '?')}"
        )
        rows.append([f"gpu{index} TFLOP/s vs torch", "pass" if ok else "fail", detail])
    return rows, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="GPU extension check on a real GPU machine")
    parser.add_argument("--verify-timeout", type=float, default=240.0)
    parser.add_argument("--cpu-seconds", type=float, default=10.0)
    parser.add_argument("--json", help="also write the summary to this file")
    args = parser.parse_args(argv)

    # Status and nvidia-smi first, on an idle GPU, so that both reads see the same state.
    status = GpuSampler(NvmlBackend(), environ=os.environ).sample_once().document
    has_gpu = status["state"] == "ok" and bool(status["gpus"])
    summary, comparisons, problems = status_step(status)
    if has_gpu:
        steps = (hub_inventory_step(), image_verdict_step(), sampler_cost_step(args.cpu_seconds))
        for rows, more in steps:
            summary += rows
            problems += more
    expected = len(status["gpus"]) if has_gpu else None
    idle_status = status if has_gpu else None
    rows, more, checks = verification_step(expected, args.verify_timeout, idle_status)
    summary += rows
    problems += more
    if has_gpu:
        rows, more = throughput_rows(checks)
        summary += rows
        problems += more

    print("\n== Summary")
    print(_table(summary, ["item", "result", "detail"]))
    if args.json:
        record = {
            "status": status,
            "comparisons": [c.__dict__ for c in comparisons],
            "summary": summary,
        }
        with open(args.json, "w") as out:
            json.dump(record, out, indent=1, default=str)
    if not has_gpu:
        print(
            f"\nNo GPU here: {status['message']} The check ran what it could without one; run it "
            "on a GPU machine for the comparison and the GPU verification."
        )
        return 2
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
