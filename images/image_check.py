"""Check a freshly built single-user image, and record what it holds.

Runs inside the image at build time (the last RUN of images/singleuser/Dockerfile), with
the image's own Python. Writes ``versions.json`` (what images/build.sh turns into OCI labels)
and ``requirements.lock`` (a complete ``pip freeze``), and exits 1 with one sentence per
problem when the image is not what its name promises:

* cuda: torch lost its CUDA build (or has another one), cuDNN or NCCL does not load;
* cpu: torch is a CUDA build, or an nvidia-* package or a CUDA library is in the image.

Nothing here needs a GPU: the libraries load, no device is opened.
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

# Python bindings to the host driver's NVML (the GPU panel reads it): no CUDA inside.
NOT_CUDA_PACKAGES = {"nvidia-ml-py"}
# Library files that only a CUDA build of torch brings along.
CUDA_LIBRARY_RE = re.compile(r"^lib(cudart|cudnn|nccl|cublas|cusparse|cufft)[^/]*\.so(\.[0-9.]+)?$")


def _dotted_cudnn(version: int | None) -> str | None:
    """torch's cuDNN number (91002) as a version ("9.10.2")."""
    if not version:
        return None
    return f"{version // 10000}.{version % 10000 // 100}.{version % 100}"


def torch_versions() -> dict:
    """torch, its CUDA build, cuDNN, NCCL; a value is None when absent or not loadable."""
    out: dict = {
        "torch": None, "cuda": None, "cudnn": None, "nccl": None, "cuda_archs": [], "errors": []
    }  # fmt: skip
    try:
        import torch
    except Exception as e:  # a broken torch is a finding, reported below
        out["errors"].append(f"torch does not import: {e}")
        return out
    out["torch"] = torch.__version__
    out["cuda"] = torch.version.cuda
    if torch.version.cuda:
        out["cuda_archs"] = cuda_archs(torch)
        try:
            out["cudnn"] = _dotted_cudnn(torch.backends.cudnn.version())
        except Exception as e:
            out["errors"].append(f"cuDNN does not load: {e}")
        try:
            out["nccl"] = ".".join(str(n) for n in torch.cuda.nccl.version())
        except Exception as e:
            out["errors"].append(f"NCCL does not load: {e}")
    return out


def cuda_archs(torch) -> list[str]:
    """The GPU architectures the build has kernels for ("sm_90", "compute_90"), read without
    a GPU: `torch.cuda.get_arch_list()` says [] when no GPU is present, the build's own
    flags do not."""
    try:
        flags = torch._C._cuda_getArchFlags()
    except Exception:
        flags = ""
    archs = (flags or "").split() or list(torch.cuda.get_arch_list())
    return sorted(set(archs), key=lambda a: (a.split("_")[0], int(a.split("_")[-1] or 0)))


def cuda_libraries(paths: list[str]) -> list[str]:
    """CUDA library files found under the given directories (the interpreter's sys.path)."""
    found = []
    for root in {p for p in paths if p and os.path.isdir(p)}:
        for folder, _, files in os.walk(root):
            found += [os.path.join(folder, f) for f in files if CUDA_LIBRARY_RE.match(f)]
    return sorted(set(found))


def problems(
    flavour: str,
    expect_cuda: str,
    expect_torch: str,
    versions: dict,
    nvidia_packages: list[str],
    libraries: list[str],
) -> list[str]:
    """Why this image is not what its flavour promises (empty: it is)."""
    found = list(versions.get("errors", []))
    torch = versions.get("torch")
    if torch and expect_torch and not torch.split("+")[0] == expect_torch:
        found.append(f"torch is {torch}, not {expect_torch}.")
    if flavour == "cuda":
        if torch and not versions.get("cuda"):
            found.append(f"torch {torch} lost its CUDA build (torch.version.cuda is None).")
        elif expect_cuda and versions.get("cuda") and versions["cuda"] != expect_cuda:
            found.append(f"torch is built for CUDA {versions['cuda']}, not {expect_cuda}.")
        if versions.get("cuda") and not versions.get("cudnn"):
            found.append("cuDNN is missing: torch.backends.cudnn.version() gave nothing.")
        if versions.get("cuda") and not versions.get("cuda_archs"):
            found.append("torch names no GPU architecture its kernels were built for.")
    elif flavour == "cpu":
        if versions.get("cuda"):
            found.append(f"the CPU image's torch is a CUDA {versions['cuda']} build.")
        if nvidia_packages:
            found.append(f"the CPU image holds CUDA packages: {', '.join(nvidia_packages)}.")
        if libraries:
            more = f" and {len(libraries) - 3} more" if len(libraries) > 3 else ""
            found.append(f"the CPU image holds CUDA libraries: {', '.join(libraries[:3])}{more}.")
    else:
        found.append(f"unknown flavour {flavour!r}; use cpu or cuda.")
    return found


def _version_of(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flavour", choices=["cpu", "cuda"], required=True)
    ap.add_argument("--cuda", default="", help="the CUDA build torch must report, e.g. 12.8")
    ap.add_argument("--torch", default="", help="the torch release expected, e.g. 2.9.1")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)

    versions = torch_versions()
    nvidia = sorted(
        name
        for name in (d.metadata["Name"] or "" for d in metadata.distributions())
        if name.lower().startswith("nvidia-") and name.lower() not in NOT_CUDA_PACKAGES
    )
    # Only a CPU image must be searched (gigabytes of files in a CUDA image, all expected).
    libraries = cuda_libraries(sys.path) if args.flavour == "cpu" else []
    found = problems(args.flavour, args.cuda, args.torch, versions, nvidia, libraries)
    record = {
        "flavour": args.flavour,
        "torch": versions["torch"],
        "cuda": versions["cuda"],
        "cudnn": versions["cudnn"],
        "nccl": versions["nccl"],
        "cuda_archs": versions["cuda_archs"],
        "python": platform.python_version(),
        "jupyterlab": _version_of("jupyterlab"),
        "jupyterhub": _version_of("jupyterhub"),
        "cudaspawner": _version_of("cudaspawner"),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "versions.json").write_text(json.dumps(record, indent=1) + "\n")
    lock = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--all", "--disable-pip-version-check"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    (args.out / "requirements.lock").write_text(lock)
    print(json.dumps(record))
    for problem in found:
        print(f"image check failed: {problem}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
