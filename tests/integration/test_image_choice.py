"""Which images scripts/up.sh builds (images/wanted-images.sh), on the hosts users have.

The host is faked on PATH: `nvidia-smi` (a GPU or none), `nvidia-ctk` (the NVIDIA Container
Toolkit) and `docker` (its registered runtimes). No GPU or engine is touched.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "images" / "wanted-images.sh"


def _fake(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def _choose(
    tmp_path: Path,
    gpu: bool,
    toolkit: bool = False,
    runtime: bool = False,
    images: str | None = None,
):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if gpu:
        _fake(bin_dir, "nvidia-smi", 'echo "GPU 0: NVIDIA H100 (UUID: GPU-aaaa)"')
    else:
        _fake(bin_dir, "nvidia-smi", "echo 'NVIDIA-SMI has failed' >&2; exit 9")
    if toolkit:
        _fake(bin_dir, "nvidia-ctk", "exit 0")
    runtimes = '{"io.containerd.runc.v2":{},"runc":{}' + (',"nvidia":{}' if runtime else "") + "}"
    _fake(bin_dir, "docker", f"echo '{runtimes}'")
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    if images is not None:
        env["CUDASPAWNER_IMAGES"] = images
    assert not any(
        (Path(d) / "nvidia-ctk").exists() or (Path(d) / "nvidia-container-cli").exists()
        for d in ("/usr/bin", "/bin")
    ), "this host has the real toolkit; the fakes cannot hide it"
    return subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30
    )


def test_a_host_without_gpus_builds_the_cpu_image_only(tmp_path):
    r = _choose(tmp_path, gpu=False, toolkit=True, runtime=True)
    assert (r.returncode, r.stdout.strip(), r.stderr) == (0, "cpu", "")


@pytest.mark.parametrize(("toolkit", "runtime"), [(True, False), (False, True)])
def test_a_gpu_host_with_the_container_toolkit_builds_the_cuda_image(tmp_path, toolkit, runtime):
    r = _choose(tmp_path, gpu=True, toolkit=toolkit, runtime=runtime)
    assert (r.returncode, r.stdout.strip(), r.stderr) == (0, "all", "")


def test_a_gpu_host_without_the_toolkit_is_told_what_to_install_and_carries_on_with_cpu(
    tmp_path,
):
    r = _choose(tmp_path, gpu=True)
    assert r.returncode == 0 and r.stdout.strip() == "cpu"
    assert "apt-get install -y nvidia-container-toolkit" in r.stderr
    assert "nvidia-ctk runtime configure --runtime=docker" in r.stderr
    assert "Carrying on with the CPU image only" in r.stderr


@pytest.mark.parametrize(("asked", "gpu", "built"), [("all", False, "all"), ("cpu", True, "cpu")])
def test_the_admin_can_ask_for_all_images_or_cpu_only(tmp_path, asked, gpu, built):
    r = _choose(tmp_path, gpu=gpu, toolkit=True, images=asked)
    assert (r.returncode, r.stdout.strip()) == (0, built)


def test_an_unknown_choice_is_refused_with_a_sentence(tmp_path):
    r = _choose(tmp_path, gpu=False, images="gpu-please")
    assert r.returncode == 2 and r.stdout == ""
    assert "CUDASPAWNER_IMAGES is 'gpu-please'; use auto (the default), cpu or all." in r.stderr
