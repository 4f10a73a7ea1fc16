"""Old import paths of modules that moved into sub-packages keep working, with a warning.

A site's `jupyterhub_config.py`, an installed entry point or a script may still name
`spawner.auth.CUDANativeAuthenticator` or `spawner.profiles.parse_profiles`: each old
module is a few lines that hand every name on to the new one (`forward`).
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from typing import Any


def forward(old: str, new: str) -> Callable[[str], Any]:
    """A module `__getattr__` for `old` that takes its names from `new`, warning once."""
    warned = False

    def __getattr__(name: str) -> Any:
        nonlocal warned
        if not warned:
            warned = True
            warnings.warn(
                f"{old} has moved to {new}; the old path will be removed in a later release.",
                DeprecationWarning,
                stacklevel=2,
            )
        return getattr(importlib.import_module(new), name)

    return __getattr__
