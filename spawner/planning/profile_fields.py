"""The fields of one profile that hold more than a word: GPU counts, environment, volumes
and the groups or users it is offered to. Each parser gets the admin's raw value and a
`fail(field, sentence)` that makes the error naming the profile; pure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from .quoting import admin_type as _admin_type
from .quoting import excerpt as _excerpt
from .quoting import join_counts as _join_counts

# Sanity cap for counts: no Docker host has more GPUs than this; larger is a typo.
MAX_GPUS = 1024
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_gpus(value: object, fail) -> tuple[tuple[int, ...], int]:
    """gpus: an int (fixed), a list (choices, first is the default) or {choices, default}."""

    def count(v: object, what: str) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise fail("gpus", f"{what} must be a whole number, not {_admin_type(v)}.")
        if v < 0:
            raise fail("gpus", f"{what} cannot be negative ({v}).")
        if v > MAX_GPUS:
            raise fail("gpus", f"{what} {v} is more than {MAX_GPUS}; is it a typo?")
        return v

    if isinstance(value, Mapping):
        extra = [str(k) for k in value if k not in ("choices", "default")]
        if extra:
            raise fail(
                "gpus", f"unknown key {extra[0]!r}; use {{'choices': [0, 1, 2], 'default': 1}}."
            )
        if "choices" not in value:
            raise fail(
                "gpus", "a dict needs 'choices', such as {'choices': [0, 1, 2], 'default': 1}."
            )
        listed = value["choices"]
        given_default = value.get("default")
    elif isinstance(value, (list, tuple)):
        listed, given_default = value, None
    else:
        fixed = count(value, "the GPU count")
        return (fixed,), fixed

    if not isinstance(listed, (list, tuple)) or not listed:
        raise fail(
            "gpus", f"choices must be a non-empty list of GPU counts, not {_admin_type(listed)}."
        )
    counts = [count(v, "each GPU choice") for v in listed]
    if len(set(counts)) != len(counts):
        raise fail("gpus", f"choices {counts} list a count twice.")
    if given_default is None:
        gpu_default = counts[0]
    else:
        gpu_default = count(given_default, "the default GPU count")
        if gpu_default not in counts:
            raise fail(
                "gpus",
                f"the default {gpu_default} is not among the choices "
                f"{_join_counts(sorted(counts))}.",
            )
    return tuple(sorted(counts)), gpu_default


def parse_environment(value: object, fail) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise fail("environment", f"must be a dict of name -> string, not {_admin_type(value)}.")
    env: dict[str, str] = {}
    for k, v in value.items():
        if not isinstance(k, str) or not _ENV_NAME_RE.match(k):
            raise fail("environment", f"{_excerpt(k)} is not a valid variable name.")
        if not isinstance(v, str):
            raise fail(
                "environment",
                f"the value of {k} must be a string (quote numbers), not {_admin_type(v)}.",
            )
        env[k] = v
    return env


def parse_volumes(value: object, fail) -> dict:
    """DockerSpawner's format: {source: target} or {source: {"bind": target, "mode": m}}."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise fail(
            "volumes", f"must be a dict of source -> container path, not {_admin_type(value)}."
        )
    volumes: dict = {}
    for source, target in value.items():
        if not isinstance(source, str) or not source:
            raise fail("volumes", f"source {_excerpt(source)} must be a non-empty string.")
        if isinstance(target, str) and target.startswith("/"):
            volumes[source] = target
            continue
        if isinstance(target, Mapping):
            extra = [str(k) for k in target if k not in ("bind", "mode")]
            bind, mode = target.get("bind"), target.get("mode", "rw")
            if (
                not extra
                and isinstance(bind, str)
                and bind.startswith("/")
                and mode
                in (
                    "ro",
                    "rw",
                )
            ):
                volumes[source] = {"bind": bind, "mode": mode}
                continue
        raise fail(
            "volumes",
            f"{source!r} must map to an absolute container path such as '/data', or to "
            "{'bind': '/data', 'mode': 'ro'} (mode 'ro' or 'rw').",
        )
    return volumes


def parse_names(value: object, key: str, fail) -> frozenset[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        raise fail(key, f"must be a list of names such as [{value!r}], not a single string.")
    if not isinstance(value, (list, tuple, set, frozenset)):
        raise fail(key, f"must be a list of names, not {_admin_type(value)}.")
    for name in value:
        if not isinstance(name, str) or not name:
            raise fail(key, f"{_excerpt(name)} is not a name (a non-empty string).")
    return frozenset(value)


# --- who may use what ---------------------------------------------------------------------
