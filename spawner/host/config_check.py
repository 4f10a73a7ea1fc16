"""Checks run when the hub loads its configuration, so mistakes stop it at start.

JupyterHub creates spawners lazily, per user, so a broken `profiles` list would otherwise
surface only at the first spawn, in front of a user. `jupyterhub_config.py` calls
`check_hub_config(c)` last; add the same two lines to your own config file.
"""

from __future__ import annotations

from ..planning.profiles import ProfileConfigError, site_profiles


def _setting(config, name: str):
    """A setting of the spawner from its own section or DockerSpawner's / Spawner's."""
    for section in ("CUDADockerSpawner", "DockerSpawner", "Spawner"):
        if name in config[section]:
            return config[section][name]
    return None


def check_hub_config(config) -> None:
    """Exit with a clear message when the static profiles or the user-option hooks are wrong."""
    hook = _setting(config, "apply_user_options")
    if hook is not None and not callable(hook):
        raise SystemExit(
            "cudaspawner: apply_user_options must be a callable (it runs after cudaspawner "
            "validates the choice of profile and GPUs); a dict cannot apply {'profile', 'gpus'}."
        )
    raw = _setting(config, "profiles")
    images = _setting(config, "allowed_images")
    if callable(raw) or callable(images):
        return  # a callable's result is checked each time it is called
    if isinstance(images, list):
        images = {i: i for i in images}
    try:
        # The image only names the implicit "Default" profile; any non-empty name checks alike.
        site_profiles(raw, images if images != "*" else None, _setting(config, "image") or "image")
    except ProfileConfigError as e:
        raise SystemExit(f"cudaspawner: invalid CUDADockerSpawner.profiles: {e}") from None
