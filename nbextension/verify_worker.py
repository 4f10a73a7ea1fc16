"""The verification worker: ``python -m nbextension.verify_worker`` in its own process.

It runs in a child process so that the Jupyter server never holds a CUDA context (which would
pin GPU memory for the server's lifetime and tie the server to the driver's health). Each result
is printed as soon as it is known, one line per record::

    CUDASPAWNER-VERIFY {"kind": "check", "id": ..., "title": ..., "status": ..., ...}
    CUDASPAWNER-VERIFY {"kind": "versions", "torch": ..., "cuda": ..., ...}
    CUDASPAWNER-VERIFY {"kind": "done", "gpu_count": N}

so the driver keeps the checks that finished even when a later one hangs. Anything else on
stdout (library chatter) is ignored. Matrices are small on the CPU: a CPU-only run takes seconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from typing import Any

PREFIX = "CUDASPAWNER-VERIFY "
# Relative Frobenius error allowed between a float32 matmul and the float64 reference: float32
# accumulation over k=1024 terms stays near 1e-6, while a broken device or kernel is off by far
# more than this.
MATMUL_TOLERANCE = 1e-4


def emit(kind: str, **record: Any) -> None:
    print(PREFIX + json.dumps({"kind": kind, **record}), flush=True)


def check(check_id: str, title: str, status: str, reason: str, **details: Any) -> str:
    emit("check", id=check_id, title=title, status=status, reason=reason, details=details)
    return status


def guarded(check_id: str, title: str, step: Any, *args: Any, explain: Any = None) -> None:
    """Run one step; an exception becomes a failed check instead of ending the worker
    (`explain`: the exception -> the user's sentence, else its type and text)."""
    try:
        step(*args)
    except Exception as e:
        reason = explain(e) if explain else None
        check(check_id, title, "fail", reason or f"{type(e).__name__}: {e}".strip())


def kernel_mismatch(torch: Any, index: int, error: BaseException) -> str | None:
    """The sentence for a GPU this image's PyTorch has no kernels for (issue 27), or None.

    The hub refuses such an image before the start where the image and the host say what
    they are; this names the mismatch it could not know of (a site's image, a listed host).
    """
    if "no kernel image is available" not in str(error):
        return None
    major, minor = torch.cuda.get_device_capability(index)
    archs = " ".join(torch.cuda.get_arch_list()) or "none"
    return (
        f"This image's PyTorch has no kernels for GPU {index}'s sm_{major}{minor} "
        f"(it was built for {archs}); pick an image built for this GPU."
    )


def cuda_device_count(torch: Any) -> tuple[int, str]:
    """(GPUs CUDA sees, what torch warned while looking): a driver older than the image's
    CUDA needs is only a warning from `is_available`, and the user should read it."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        available = torch.cuda.is_available()
    said = " ".join(" ".join(str(w.message).split()) for w in caught)
    return (torch.cuda.device_count() if available else 0), said


def _cudnn_version(torch: Any) -> str | None:
    try:
        v = torch.backends.cudnn.version()
    except Exception:
        return None
    if not v:
        return None
    # cuDNN 9 encodes major*10000 + minor*100 + patch; cuDNN 8 major*1000 + minor*100 + patch.
    major, rest = (v // 10000, v % 10000) if v >= 90000 else (v // 1000, v % 1000)
    return f"{major}.{rest // 100}.{rest % 100}"


def _nccl_version(torch: Any) -> str | None:
    try:
        v = torch.cuda.nccl.version()
    except Exception:
        return None
    return ".".join(map(str, v)) if isinstance(v, tuple) else str(v)


def relative_error(result: Any, reference: Any) -> float:
    """Frobenius norm of the difference over that of the reference (float64)."""
    diff = (result.double().cpu() - reference).norm().item()
    return diff / max(reference.norm().item(), 1e-30)


def _timed(torch: Any, device: Any, work: Any, target_seconds: float = 1.0) -> tuple[int, float]:
    """Run ``work`` for about ``target_seconds`` on a CUDA device; return (iterations, seconds).

    A fixed time rather than a fixed count: fast GPUs get enough iterations for a stable
    figure, slow ones do not take minutes, and the load is long enough for NVML to see it.
    """

    def run(iterations: int) -> float:
        torch.cuda.synchronize(device)
        start = time.perf_counter()
        for _ in range(iterations):
            work()
        torch.cuda.synchronize(device)
        return time.perf_counter() - start

    run(1)  # warm-up: kernel selection, allocator
    probe = run(3)
    iterations = max(3, min(5000, int(3 * target_seconds / max(probe, 1e-6))))
    return iterations, run(iterations)


def cpu_matmul(torch: Any) -> None:
    n = 256
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen)
    b = torch.randn(n, n, generator=gen)
    a @ b  # warm-up, so that the timing below is the multiply alone
    start = time.perf_counter()
    result = a @ b
    elapsed = time.perf_counter() - start
    error = relative_error(result, a.double() @ b.double())
    ok = error <= MATMUL_TOLERANCE
    check(
        "cpu_matmul",
        "Matrix multiply on the CPU",
        "pass" if ok else "fail",
        f"float32 {n}x{n} result is within {MATMUL_TOLERANCE:g} of the float64 reference"
        if ok
        else f"float32 result differs from the float64 reference by {error:.2e} "
        f"(allowed {MATMUL_TOLERANCE:g})",
        size=n,
        relative_error=error,
        tolerance=MATMUL_TOLERANCE,
        gflops=round(2 * n**3 / max(elapsed, 1e-9) / 1e9, 2),
    )


def _true_float32(torch: Any) -> None:
    """Turn TF32 off for float32 matmuls: TF32's ~1e-3 error would hide a real comparison."""
    matmul = torch.backends.cuda.matmul
    if hasattr(matmul, "fp32_precision"):  # PyTorch 2.9+; mixing with allow_tf32 is an error
        matmul.fp32_precision = "ieee"
    else:
        matmul.allow_tf32 = False


def gpu_matmul(torch: Any, index: int, name: str) -> None:
    n = 1024
    gen = torch.Generator().manual_seed(index)
    a = torch.randn(n, n, generator=gen)
    b = torch.randn(n, n, generator=gen)
    device = torch.device("cuda", index)
    _true_float32(torch)
    result = (a.to(device) @ b.to(device)).cpu()
    error = relative_error(result, a.double() @ b.double())
    ok = error <= MATMUL_TOLERANCE
    check(
        f"gpu{index}_matmul",
        f"Matrix multiply on GPU {index} ({name})",
        "pass" if ok else "fail",
        f"float32 {n}x{n} result matches the CPU within {MATMUL_TOLERANCE:g}"
        if ok
        else f"result differs from the CPU by {error:.2e} (allowed {MATMUL_TOLERANCE:g}): "
        "this GPU computes wrong results",
        size=n,
        relative_error=error,
        tolerance=MATMUL_TOLERANCE,
    )


def median_matmul_ms(torch: Any, device: Any, n: int, dtype: Any, runs: int = 10) -> float:
    """Median time of one n x n product, in ms: CUDA events around each run, after warm-up.

    This is how PyTorch users measure a kernel (and what ``torch.utils.benchmark`` reports),
    so the figure is the card's, comparable with any plain torch measurement. A wall-clock
    loop over seconds of back-to-back products reads 10-15 % low on a power-capped H200,
    whose clocks drop under sustained load.
    """
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    out = torch.empty(n, n, device=device, dtype=dtype)
    with torch.cuda.device(device):
        for _ in range(3):  # kernel selection, allocator, clocks up
            torch.matmul(a, b, out=out)
        torch.cuda.synchronize(device)
        times = []
        for _ in range(runs):
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            torch.matmul(a, b, out=out)
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
    del a, b, out
    return statistics.median(times)


def gpu_throughput(torch: Any, index: int, name: str, bf16: bool) -> None:
    device = torch.device("cuda", index)
    dtype = torch.bfloat16 if bf16 else torch.float16
    dtype_name = str(dtype).removeprefix("torch.")
    n = 8192
    ms = median_matmul_ms(torch, device, n, dtype)
    tflops = 2 * n**3 / (ms / 1e3) / 1e12
    check(
        f"gpu{index}_matmul_tflops",
        f"Matrix-multiply throughput on GPU {index} ({name})",
        "pass",
        f"{tflops:.0f} TFLOP/s on {name}, {dtype_name} {n}x{n} (median of 10 after warm-up)",
        tflops=round(tflops, 1),
        dtype=dtype_name,
        size=n,
        gpu_name=name,
        median_ms=round(ms, 4),
    )
    free, _ = torch.cuda.mem_get_info(device)
    size = int(min(1 << 30, free // 8)) // 4 * 4
    src = torch.empty(size // 4, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    iterations, seconds = _timed(torch, device, lambda: dst.copy_(src))
    bandwidth = 2 * size * iterations / seconds / 1e9  # each copy reads and writes every byte
    torch.cuda.empty_cache()
    check(
        f"gpu{index}_memory_bandwidth",
        f"Device memory bandwidth on GPU {index}",
        "pass",
        f"{bandwidth:.0f} GB/s device-to-device copy of {size >> 20} MiB",
        gb_per_s=round(bandwidth, 1),
        bytes=size,
    )


def nccl_allreduce(torch: Any, count: int, min_gpus: int) -> None:
    title = "NCCL all-reduce across the GPUs"
    if count < min_gpus:
        check(
            "nccl_allreduce",
            title,
            "skipped",
            f"Needs at least {min_gpus} GPU{'s' if min_gpus != 1 else ''}; "
            f"this server has {count}.",
        )
        return
    from torch.cuda import nccl

    tensors = [torch.full((1 << 20,), float(i + 1), device=f"cuda:{i}") for i in range(count)]
    if not nccl.is_available(tensors):
        check("nccl_allreduce", title, "fail", "NCCL is not available in this PyTorch build.")
        return
    nccl.all_reduce(tensors)
    expected = count * (count + 1) / 2
    wrong = [i for i, t in enumerate(tensors) if not bool((t == expected).all())]
    check(
        "nccl_allreduce",
        title,
        "fail" if wrong else "pass",
        f"GPUs {wrong} hold wrong sums after the all-reduce"
        if wrong
        else f"all {count} GPUs hold the sum {expected:g}",
        gpus=count,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--expected-gpus", type=int, default=-1, help="-1: unknown")
    parser.add_argument("--nccl-min-gpus", type=int, default=2)
    args = parser.parse_args(argv)
    expected = args.expected_gpus if args.expected_gpus >= 0 else None

    try:
        import torch
    except ImportError as e:
        check(
            "torch",
            "PyTorch",
            "fail" if expected else "skipped",
            f"PyTorch is not installed in this environment ({e}).",
        )
        emit("versions", torch=None, cuda=None, cudnn=None, nccl=None)
        emit("done", gpu_count=0)
        return 0
    check("torch", "PyTorch", "pass", f"PyTorch {torch.__version__}", version=torch.__version__)

    count, warned = cuda_device_count(torch)
    emit(
        "versions",
        torch=torch.__version__,
        cuda=torch.version.cuda,
        # A CUDA build loads its cuDNN and NCCL without a GPU: name them even on a CPU-only
        # server, so a user sees which libraries the image carries before asking for a GPU.
        cudnn=_cudnn_version(torch) if torch.version.cuda else None,
        nccl=_nccl_version(torch) if torch.version.cuda else None,
    )
    devices = []
    for i in range(count):
        props = torch.cuda.get_device_properties(i)
        devices.append(
            {
                "index": i,
                "name": props.name,
                "compute_capability": f"{props.major}.{props.minor}",
                "memory_total": props.total_memory,
                "bf16": props.major >= 8,  # native bfloat16 from Ampere on
            }
        )
    title = "CUDA sees the GPUs"
    if count == 0 and not expected:
        reason = "No GPU is assigned to this server."
        if torch.version.cuda is None:
            reason += f" This PyTorch build ({torch.__version__}) has no CUDA support."
        check("cuda", title, "skipped", reason)
    elif count == 0:
        why = (
            f"PyTorch {torch.__version__} is built without CUDA"
            if torch.version.cuda is None
            else f"torch.cuda.is_available() is False{f' ({warned})' if warned else ''}"
        )
        check("cuda", title, "fail", f"{expected} GPU(s) are assigned but CUDA sees none: {why}.")
    elif expected and count < expected:
        check(
            "cuda",
            title,
            "fail",
            f"{expected} GPUs are assigned but CUDA sees only {count}.",
            devices=devices,
        )
    else:
        names = ", ".join(d["name"] for d in devices)
        check("cuda", title, "pass", f"{count} GPU(s): {names}", devices=devices)

    guarded("cpu_matmul", "Matrix multiply on the CPU", cpu_matmul, torch)
    for d in devices:
        title = f"Matrix multiply on GPU {d['index']} ({d['name']})"
        guarded(
            f"gpu{d['index']}_matmul", title, gpu_matmul, torch, d["index"], d["name"],
            explain=lambda e, i=d["index"]: kernel_mismatch(torch, i, e),
        )  # fmt: skip
    if devices:
        lacking = [str(d["index"]) for d in devices if not d["bf16"]]
        check(
            "bf16",
            "bfloat16 support",
            "skipped" if lacking else "pass",
            f"GPU(s) {', '.join(lacking)} have no native bfloat16; use float16 there."
            if lacking
            else "every GPU supports bfloat16",
        )
        for d in devices:
            title = f"Throughput of GPU {d['index']}"
            args_ = (torch, d["index"], d["name"], d["bf16"])
            guarded(f"gpu{d['index']}_performance", title, gpu_throughput, *args_)
    guarded(
        "nccl_allreduce",
        "NCCL all-reduce across the GPUs",
        nccl_allreduce,
        torch,
        count,
        args.nccl_min_gpus,
    )
    emit("done", gpu_count=count)
    return 0


if __name__ == "__main__":
    sys.exit(main())
