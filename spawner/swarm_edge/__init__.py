"""The Swarm edge: CUDASwarmSpawner and the start plan turned into a service."""
