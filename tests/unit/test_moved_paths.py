"""The hub side moved into sub-packages: old import paths, config strings and the entry
points still name the same classes (old paths warn)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
import tomllib
from traitlets.utils.importstring import import_item

ROOT = Path(__file__).resolve().parents[2]

MOVED = [
    ("spawner.docker_spawner", "CUDADockerSpawner", "spawner.docker_edge.spawner"),
    ("spawner.swarm_spawner", "CUDASwarmSpawner", "spawner.swarm_edge.spawner"),
    ("spawner.auth", "CUDANativeAuthenticator", "spawner.accounts.authenticators"),
    ("spawner.profiles", "parse_profiles", "spawner.planning.profiles"),
    ("spawner.cli", "main", "spawner.admin.gpus_cli"),
    ("spawner.admin_recovery", "main", "spawner.admin.recovery"),
]


@pytest.mark.parametrize(("old", "name", "new"), MOVED)
def test_an_old_path_gives_the_same_object_and_says_where_it_went(old, name, new):
    sys.modules.pop(old, None)  # a fresh module: it warns once
    with pytest.warns(DeprecationWarning, match=f"{old} has moved to {new}"):
        found = getattr(importlib.import_module(old), name)
    assert found is getattr(importlib.import_module(new), name)


def test_a_site_config_naming_the_old_class_strings_still_loads_them():
    # What `c.JupyterHub.authenticator_class = "spawner.auth...."` does in JupyterHub.
    sys.modules.pop("spawner.auth", None)
    with pytest.warns(DeprecationWarning):
        cls = import_item("spawner.auth.CUDASharedPasswordAuthenticator")
    assert cls.__module__ == "spawner.accounts.authenticators"


def test_every_entry_point_in_pyproject_resolves():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    targets = [
        *project["scripts"].values(),
        *(t for group in project["entry-points"].values() for t in group.values()),
    ]
    assert len(targets) >= 6
    for target in targets:
        module, _, attr = target.partition(":")
        assert callable(getattr(importlib.import_module(module), attr)), target
