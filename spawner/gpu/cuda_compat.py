"""Can this image's PyTorch run on this host's GPUs? Pure rules, one table (issue 27).

Two things stop a CUDA build of PyTorch at its first CUDA call, after the server started:

- the **driver** is older than the CUDA runtime the image carries needs. With CUDA's
  minor-version compatibility, a CUDA 12.x runtime needs at least the first CUDA 12
  driver (525.60.13), a CUDA 13.x runtime the first CUDA 13 driver (580.65.06);
- the build has **no kernels for the card's compute capability**: a cubin for sm_XY runs
  on sm_XZ with Z >= Y (same major), PTX for compute_XY is compiled by the driver for any
  card of capability >= X.Y; nothing else runs. Blackwell cards (sm_100, sm_120) also need
  a driver of 570 or newer.

The image says what it needs in labels its build check writes (`org.cudaspawner.cuda`,
`...min-driver`, `...cuda-archs`); the hub knows each GPU's capability and the driver.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# NVIDIA, "CUDA Toolkit Release Notes", table "CUDA Toolkit and Minimum Required Driver
# Version for CUDA Minor Version Compatibility" (Linux x86_64):
# https://docs.nvidia.com/cuda/cuda-toolkit-release-notes/index.html#id5
MINOR_VERSION_DRIVER = {"11": "450.80.02", "12": "525.60.13", "13": "580.65.06"}
# The first driver with Blackwell (compute capability 10.x and 12.x) support (CUDA 12.8's).
BLACKWELL_DRIVER = "570.26"

CUDA_LABEL = "org.cudaspawner.cuda"
MIN_DRIVER_LABEL = "org.cudaspawner.min-driver"
ARCHS_LABEL = "org.cudaspawner.cuda-archs"


def min_driver(cuda: str | None) -> str | None:
    """The oldest driver a CUDA runtime of this version runs on; None without CUDA."""
    if not cuda or cuda == "none":
        return None
    major = cuda.split(".")[0]
    if major not in MINOR_VERSION_DRIVER:
        raise ValueError(f"No minimum driver is known for CUDA {cuda}: add it to the table.")
    return MINOR_VERSION_DRIVER[major]


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".") if p.isdigit())


def _capability(cc: str) -> tuple[int, int]:
    major, _, minor = cc.partition(".")
    return int(major), int(minor or 0)


@dataclass(frozen=True)
class ImageNeeds:
    """What an image's CUDA build needs, from its labels (None: not a CUDA image)."""

    cuda: str | None
    min_driver: str | None
    archs: tuple[str, ...]  # "sm_90", "compute_90", ...

    @classmethod
    def from_labels(cls, labels: Mapping[str, str] | None) -> ImageNeeds | None:
        """None when the image does not say (not built here; not checked)."""
        labels = labels or {}
        if not labels.get(CUDA_LABEL) or not labels.get(MIN_DRIVER_LABEL):
            return None  # absent, or emptied by a site's image built on ours
        cuda = labels[CUDA_LABEL]
        if cuda == "none":
            return cls(None, None, ())
        driver = labels[MIN_DRIVER_LABEL]
        archs = tuple(a for a in labels.get(ARCHS_LABEL, "").split() if a != "none")
        return cls(cuda, None if driver == "none" else driver, archs)


def runs_on(archs: Iterable[str], cc: str) -> bool:
    """Whether a build with these kernels runs on a card of compute capability `cc`."""
    major, minor = _capability(cc)
    for arch in archs:
        kind, _, digits = arch.partition("_")
        if not digits.isdigit():
            continue
        a_major, a_minor = int(digits[:-1]), int(digits[-1])
        if kind == "sm" and a_major == major and a_minor <= minor:
            return True
        if kind == "compute" and (a_major, a_minor) <= (major, minor):
            return True
    return False


def sm(cc: str) -> str:
    major, minor = _capability(cc)
    return f"sm_{major}{minor}"


def refusal(needs: ImageNeeds | None, driver: str, capabilities: Iterable[str]) -> str | None:
    """Why this image cannot run on GPUs of these capabilities under this driver (one
    sentence), or None when it can, or when either side does not say."""
    if needs is None or needs.cuda is None:
        return None
    if driver and needs.min_driver and _version(driver) < _version(needs.min_driver):
        return (
            f"This image needs NVIDIA driver {needs.min_driver} or newer (CUDA {needs.cuda}); "
            f"this host has {driver}."
        )
    ccs = sorted({cc for cc in capabilities if cc}, key=_capability)
    blackwell = [cc for cc in ccs if _capability(cc)[0] in (10, 12)]
    if driver and blackwell and _version(driver) < _version(BLACKWELL_DRIVER):
        return (
            f"This host's {sm(blackwell[0])} GPUs need NVIDIA driver {BLACKWELL_DRIVER} or "
            f"newer; this host has {driver}."
        )
    if needs.archs:
        missing = [cc for cc in ccs if not runs_on(needs.archs, cc)]
        if missing:
            names = ", ".join(sm(cc) for cc in missing)
            return f"This image's PyTorch has no kernels for this host's {names} GPUs."
    return None
