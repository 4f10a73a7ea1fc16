"""Moved to `spawner.planning.profiles`; this old path keeps configs and imports working."""

from ._moved import forward

__getattr__ = forward(__name__, "spawner.planning.profiles")
