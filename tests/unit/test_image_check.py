"""The build-time image check (images/image_check.py): what makes a build fail, and why."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "image_check", Path(__file__).resolve().parents[2] / "images" / "image_check.py"
)
image_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(image_check)

CUDA_OK = {
    "torch": "2.9.1+cu128",
    "cuda": "12.8",
    "cudnn": "9.10.2",
    "nccl": "2.27.5",
    "cuda_archs": ["sm_80", "sm_90", "sm_120"],
}
CPU_OK = {"torch": "2.13.0+cpu", "cuda": None, "cudnn": None, "nccl": None}


def test_a_sound_cuda_and_a_sound_cpu_image_pass():
    assert image_check.problems("cuda", "12.8", "2.9.1", CUDA_OK, ["nvidia-cudnn-cu12"], []) == []
    assert image_check.problems("cpu", "", "2.13.0", CPU_OK, [], []) == []


@pytest.mark.parametrize(
    ("versions", "expected"),
    [
        ({**CUDA_OK, "cuda": None}, "lost its CUDA build"),
        ({**CUDA_OK, "cuda": "12.6"}, "built for CUDA 12.6, not 12.8"),
        ({**CUDA_OK, "cudnn": None}, "cuDNN is missing"),
        ({**CUDA_OK, "cuda_archs": []}, "torch names no GPU architecture"),
        ({**CUDA_OK, "torch": "2.8.0+cu128"}, "torch is 2.8.0+cu128, not 2.9.1"),
        ({**CUDA_OK, "errors": ["NCCL does not load: libnccl.so.2"]}, "NCCL does not load"),
    ],
)
def test_a_cuda_image_fails_when_torch_cuda_cudnn_or_nccl_is_wrong(versions, expected):
    found = image_check.problems("cuda", "12.8", "2.9.1", versions, [], [])
    assert any(expected in p for p in found), found


def test_a_cpu_image_fails_on_a_cuda_torch_nvidia_packages_or_cuda_libraries():
    assert "CUDA 12.8 build" in image_check.problems("cpu", "", "", CUDA_OK, [], [])[0]
    (packages,) = image_check.problems("cpu", "", "", CPU_OK, ["nvidia-cudnn-cu12"], [])
    assert "nvidia-cudnn-cu12" in packages
    libs = [f"/x/libcudart.so.{n}" for n in range(5)]
    (libraries,) = image_check.problems("cpu", "", "", CPU_OK, [], libs)
    assert "libcudart.so.0" in libraries and "and 2 more" in libraries


def test_cudnn_numbers_read_as_versions_and_cuda_library_names_are_recognised():
    assert image_check._dotted_cudnn(91002) == "9.10.2"
    assert image_check._dotted_cudnn(None) is None
    for name in ["libcudart.so.12", "libcudnn.so.9", "libnccl.so.2", "libcublas.so.12.8.4.1"]:
        assert image_check.CUDA_LIBRARY_RE.match(name), name
    for name in ["libtorch_cpu.so", "libnvidia-ml.so.1", "libcudart_static.a"]:
        assert not image_check.CUDA_LIBRARY_RE.match(name), name
