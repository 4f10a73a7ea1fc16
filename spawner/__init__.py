"""cudaspawner hub side: a DockerSpawner for GPU notebooks."""
