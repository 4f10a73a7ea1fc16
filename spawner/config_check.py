"""Checks run when the hub loads its configuration, so mistakes stop it at start.

JupyterHub creates spawners lazily, per user, so a broken `profiles` list would otherwise
surface only at the first spawn, in front of a user. `jupyterhub_config.py` calls
`check_hub_config(c)` last; add the same two lines to your own config file.
"""

from __future__ import annotations

from .profiles import ProfileConfigError, parse_profiles


def check_hub_config(config) -> None:
    """Exit with a clear message when the static profile list is invalid."""
    section = config.CUDADockerSpawner
    raw = section.profiles if "profiles" in section else None
    if raw is None or callable(raw):
        return  # a callable's result is checked each time it is called
    try:
        parse_profiles(list(raw))
    except ProfileConfigError as e:
        raise SystemExit(f"cudaspawner: invalid CUDADockerSpawner.profiles: {e}") from None
