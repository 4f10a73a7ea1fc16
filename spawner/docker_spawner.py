"""Moved to `spawner.docker_edge.spawner`; this old path keeps configs and imports working."""

from ._moved import forward

__getattr__ = forward(__name__, "spawner.docker_edge.spawner")
