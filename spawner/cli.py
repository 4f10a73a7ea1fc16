"""Moved to `spawner.admin.gpus_cli`; this old path keeps configs and imports working."""

from ._moved import forward

__getattr__ = forward(__name__, "spawner.admin.gpus_cli")
