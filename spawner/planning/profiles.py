"""Image profiles: the admin's list, and who may use which.

Pure data and validation, no JupyterHub or Docker. The admin's `CUDADockerSpawner.profiles`
(`parse_profiles`) is trusted but error-prone, so every mistake stops the hub with a
`ProfileConfigError` naming the profile and the field. `site_profiles` is what a site
offers when it has no list of its own: one profile per `allowed_images` entry (as
DockerSpawner does), else the spawner's `image` with no GPUs. A user's choice among them
is `user_options`'s job.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ..gpu.inventory_list import MIG_PROFILE
from ..sizes import DOCKER, JUPYTERHUB, read_size
from .profile_fields import parse_environment, parse_gpus, parse_names, parse_volumes
from .quoting import admin_type as _admin_type
from .quoting import excerpt as _excerpt

__all__ = [
    "Profile",
    "ProfileConfigError",
    "default_profile",
    "derive_slug",
    "parse_profiles",
    "profiles_for_user",
    "site_profiles",
]

SLUG_MAX = 64
# Lower-case letters, digits, '-' and '_': safe in HTML ids, form field names and labels.
SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")

PROFILE_KEYS = (
    "slug",
    "display_name",
    "description",
    "default",
    "image",
    "gpus",
    "mig",
    "cpu_limit",
    "mem_limit",
    "shm_size",
    "environment",
    "volumes",
    "groups",
    "users",
)


class ProfileConfigError(ValueError):
    """The admin's profile list is wrong; the message names the profile and the field."""

    def __init__(self, message: str, profile: str | None = None, field: str | None = None):
        super().__init__(message)
        self.profile = profile
        self.field = field


@dataclass(frozen=True)
class Profile:
    """One validated profile. `image` None means the spawner's own `image`."""

    slug: str
    display_name: str
    description: str = ""
    default: bool = False
    image: str | None = None
    gpu_choices: tuple[int, ...] = (0,)
    gpu_default: int = 0
    # A MIG profile ("1g.18gb"): the GPU counts are then counts of slices of that profile.
    mig: str = ""
    cpu_limit: float | None = None
    mem_limit: str | None = None
    shm_size: str | None = None
    # Dicts are copies owned by the profile; excluded from the hash so profiles stay hashable.
    environment: dict[str, str] = field(default_factory=dict, hash=False)
    volumes: dict = field(default_factory=dict, hash=False)
    groups: frozenset[str] | None = None
    users: frozenset[str] | None = None

    @property
    def max_gpus(self) -> int:
        return max(self.gpu_choices)

    @property
    def min_gpus(self) -> int:
        return min(self.gpu_choices)

    @property
    def offers_gpu_choice(self) -> bool:
        """True when the user picks a count (more than one choice)."""
        return len(self.gpu_choices) > 1

    @property
    def restricted(self) -> bool:
        """True when only listed users or groups may use this profile."""
        return self.groups is not None or self.users is not None

    def allows(self, user_name: str, group_names: Iterable[str]) -> bool:
        if not self.restricted:
            return True
        if self.users is not None and user_name in self.users:
            return True
        return self.groups is not None and not self.groups.isdisjoint(group_names)


# --- admin configuration ----------------------------------------------------------------


def derive_slug(display_name: str) -> str:
    """A slug from a display name: 'PyTorch 2.9 / CUDA 12' -> 'pytorch-2-9-cuda-12'."""
    ascii_name = unicodedata.normalize("NFKD", display_name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return slug[:SLUG_MAX].rstrip("-")


def parse_profiles(raw: Iterable[Mapping]) -> list[Profile]:
    """Validate the admin's profile list; raise ProfileConfigError on the first mistake."""
    if isinstance(raw, (str, bytes, Mapping)) or not isinstance(raw, Iterable):
        raise ProfileConfigError(
            f"CUDADockerSpawner.profiles must be a list of dicts, not {_admin_type(raw)}."
        )
    profiles: list[Profile] = []
    where_slug: dict[str, str] = {}
    default_at: str | None = None
    for index, entry in enumerate(raw):
        profile = _parse_profile(index, entry)
        where = _where(index, profile.display_name)
        if profile.slug in where_slug:
            raise ProfileConfigError(
                f"{where}: slug {profile.slug!r} is already used by {where_slug[profile.slug]}. "
                "Slugs must be unique; set a distinct 'slug' on one of them.",
                profile=profile.display_name,
                field="slug",
            )
        where_slug[profile.slug] = where
        if profile.default:
            if default_at is not None:
                raise ProfileConfigError(
                    f"{where}: 'default' is True, but {default_at} is already the default. "
                    "Mark at most one profile as the default.",
                    profile=profile.display_name,
                    field="default",
                )
            default_at = where
        profiles.append(profile)
    return profiles


def _where(index: int, display_name: object = None) -> str:
    if isinstance(display_name, str) and display_name:
        return f"Profile {index} ({display_name!r})"
    return f"Profile {index}"


def _parse_profile(index: int, entry: object) -> Profile:
    if not isinstance(entry, Mapping):
        raise ProfileConfigError(
            f"{_where(index)} must be a dict, not {_admin_type(entry)}.", profile=str(index)
        )
    name = entry.get("display_name")
    where = _where(index, name)
    ident = name if isinstance(name, str) and name else str(index)

    def fail(key: str, problem: str) -> ProfileConfigError:
        return ProfileConfigError(f"{where}, field {key!r}: {problem}", profile=ident, field=key)

    for key in entry:
        if key not in PROFILE_KEYS:
            hint = difflib.get_close_matches(str(key), PROFILE_KEYS, n=1)
            suggestion = f" Did you mean {hint[0]!r}?" if hint else ""
            raise fail(
                str(key),
                f"unknown key.{suggestion} Known keys: {', '.join(PROFILE_KEYS)}.",
            )

    if not isinstance(name, str) or not name.strip():
        raise fail("display_name", "required, a non-empty string.")

    if entry.get("slug") is None:
        slug = derive_slug(name)
        if not slug:
            raise fail("slug", f"cannot derive a slug from {name!r}; set 'slug' explicitly.")
    else:
        slug = entry["slug"]
        if not isinstance(slug, str) or not SLUG_RE.match(slug):
            raise fail(
                "slug",
                f"{_excerpt(slug)} is not a valid slug: use 1 to {SLUG_MAX} lower-case letters, "
                "digits, '-' or '_', starting with a letter or digit.",
            )

    description = entry.get("description", "")
    if description is None:
        description = ""
    if not isinstance(description, str):
        raise fail("description", f"must be a string, not {_admin_type(description)}.")

    default = entry.get("default", False)
    if not isinstance(default, bool):
        raise fail("default", f"must be True or False, not {_admin_type(default)}.")

    image = entry.get("image")
    if image is not None and (not isinstance(image, str) or not image.strip()):
        raise fail(
            "image",
            f"must be a non-empty image name such as 'repo/name:tag', not {_admin_type(image)}.",
        )

    mig = entry.get("mig") or ""
    if mig and (not isinstance(mig, str) or not MIG_PROFILE.match(mig)):
        raise fail("mig", f"{_excerpt(mig)} is not a MIG profile name such as '1g.18gb'.")
    # A MIG profile without a count asks for one slice.
    choices, gpu_default = parse_gpus(entry.get("gpus", 1 if mig else 0), fail)
    if mig and min(choices) < 1:
        raise fail("gpus", "a MIG profile gives slices: every count must be 1 or more.")

    cpu_limit = entry.get("cpu_limit")
    if cpu_limit is not None:
        if isinstance(cpu_limit, bool) or not isinstance(cpu_limit, (int, float)):
            raise fail(
                "cpu_limit",
                f"must be a number of CPUs such as 4 or 0.5, not {_admin_type(cpu_limit)}.",
            )
        if not cpu_limit > 0:
            raise fail("cpu_limit", f"must be greater than 0, not {cpu_limit}.")
        cpu_limit = float(cpu_limit)

    mem_limit = entry.get("mem_limit")
    if mem_limit is not None and read_size(mem_limit, JUPYTERHUB) is None:
        raise fail(
            "mem_limit",
            f"{_excerpt(mem_limit)} is not a memory size: write a number "
            "and an upper-case K, M, G or T, such as '8G'.",
        )

    shm_size = entry.get("shm_size")
    if shm_size is not None and read_size(shm_size, DOCKER) is None:
        raise fail(
            "shm_size",
            f"{_excerpt(shm_size)} is not a size: write a number and b, k, m or g, such as '2g'.",
        )

    return Profile(
        slug=slug,
        display_name=name,
        description=description,
        default=default,
        image=image,
        gpu_choices=choices,
        gpu_default=gpu_default,
        mig=mig,
        cpu_limit=cpu_limit,
        mem_limit=mem_limit,
        shm_size=shm_size,
        environment=parse_environment(entry.get("environment"), fail),
        volumes=parse_volumes(entry.get("volumes"), fail),
        groups=parse_names(entry.get("groups"), "groups", fail),
        users=parse_names(entry.get("users"), "users", fail),
    )


def profiles_for_user(
    profiles: Iterable[Profile], user_name: str, group_names: Iterable[str]
) -> list[Profile]:
    """The profiles this user may use, in the admin's order.

    A profile with neither `groups` nor `users` is for everyone; otherwise the user must be
    listed in `users` or belong to one of `groups`.
    """
    groups = frozenset(group_names)
    return [p for p in profiles if p.allows(user_name, groups)]


def default_profile(visible: Iterable[Profile]) -> Profile | None:
    """The first profile marked default, else the first one, else None."""
    visible = list(visible)
    for p in visible:
        if p.default:
            return p
    return visible[0] if visible else None


def site_profiles(
    configured: Iterable[Mapping] | None,
    allowed_images: Mapping[str, str] | str | None,
    image: str,
) -> list[Profile]:
    """What a site offers: its own profiles, else one per allowed image, else `image` alone.

    `allowed_images` is DockerSpawner's (already a dict, or "*"): each entry becomes a CPU
    profile named by its key, after a "Default" profile for `image` when no entry runs it
    (an empty choice starts `image`, as in DockerSpawner). Setting both is refused.
    """
    configured = list(configured or [])
    images = allowed_images if isinstance(allowed_images, Mapping) else {}
    if configured and images:
        raise ProfileConfigError(
            "Both CUDADockerSpawner.profiles and DockerSpawner.allowed_images are set; "
            "set one of them (a profile's 'image' offers an image with its limits and GPUs)."
        )
    if configured:
        return parse_profiles(configured)
    entries: list[dict] = []
    if image not in images.values():
        entries.append({"slug": "default", "display_name": "Default", "image": image})
    for key, target in images.items():
        first_of_image = target == image and not any(e.get("default") for e in entries)
        entries.append(
            {
                "slug": derive_slug(str(key)) or "image",
                "display_name": str(key),
                "image": target,
                "default": first_of_image,
            }
        )
    slugs: set[str] = set()
    for n, entry in enumerate(entries):  # keys such as "4.0" and "4-0" meet in one slug
        if entry["slug"] in slugs:
            entry["slug"] = f"image-{n}"
        slugs.add(entry["slug"])
    return parse_profiles(entries)
