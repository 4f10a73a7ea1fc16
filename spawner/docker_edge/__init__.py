"""The Docker edge: CUDADockerSpawner and the start plan turned into a container."""
