"""cudaspawner hub side: a DockerSpawner for GPU notebooks.

`CUDADockerSpawner` is imported lazily, so the pure modules (profiles, GPU allocation)
and the admin CLI load without JupyterHub's and DockerSpawner's import cost.
"""

from __future__ import annotations

__all__ = ["CUDADockerSpawner"]


def __getattr__(name: str):
    if name == "CUDADockerSpawner":
        from .docker_edge.spawner import CUDADockerSpawner

        return CUDADockerSpawner
    raise AttributeError(f"module 'spawner' has no attribute {name!r}")
