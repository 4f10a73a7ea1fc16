"""The default deployment's two profiles, for a site that has configured none.

Pure data: given how many GPUs the host's inventory sees, the two entries in the admin's
profile format (`profiles.parse_profiles` validates them like any site's list). Site
profiles (`CUDADockerSpawner.profiles`) replace them entirely.

* "CPU only": the site's image (`DockerSpawner.image`, the CPU image by default).
* "PyTorch 2.9 / CUDA 12.8": the CUDA image, 1 .. N GPUs where N is the host's count, the
  preselected card on a GPU host. On a host without GPUs it asks for one GPU, so the form
  shows it unavailable with the reason ("no GPUs") instead of hiding what the platform does.
"""

from __future__ import annotations

from ..environment import CUDA_IMAGE

__all__ = [
    "CPU_SLUG",
    "CUDA_IMAGE",
    "CUDA_SLUG",
    "default_profiles",
]

CPU_SLUG = "cpu"
CUDA_SLUG = "pytorch-cuda"
# What images/build.sh tags; a site with a registry may give a digest instead.


def default_profiles(
    gpu_count: int, cpu_image: str | None = None, cuda_image: str = CUDA_IMAGE
) -> list[dict]:
    """The "CPU only" and "PyTorch 2.9 / CUDA 12.8" profiles for a host with `gpu_count` GPUs.

    `cpu_image` None leaves the CPU profile on the spawner's own image.
    """
    if gpu_count < 0:
        raise ValueError(f"a host cannot have {gpu_count} GPUs")
    cpu = {
        "slug": CPU_SLUG,
        "display_name": "CPU only",
        "description": "PyTorch on the CPU, no GPU: data preparation, small models, notes.",
        "default": gpu_count == 0,
    }
    if cpu_image:
        cpu["image"] = cpu_image
    cuda = {
        "slug": CUDA_SLUG,
        "display_name": "PyTorch 2.9 / CUDA 12.8",
        "description": "PyTorch 2.9.1 built for CUDA 12.8, cuDNN 9 and NCCL 2.27, "
        "with GPUs of this host to yourself.",
        "image": cuda_image,
        # A profile's choices are never empty: with no GPUs, asking for one is what makes
        # the form show the card as unavailable, and the spawner refuse it plainly.
        "gpus": list(range(1, gpu_count + 1)) if gpu_count else 1,
        "default": gpu_count > 0,
    }
    return [cpu, cuda]
