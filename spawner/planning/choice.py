"""A user's choice of profile and GPUs: untrusted input, validated once per start.

Pure, no JupyterHub or Docker. `user_options` come from the spawn form, a `/hub/spawn?`
query or the REST API; every bad value becomes a `UserOptionsError` whose message names the
field and the allowed values, never echoes more than a short, quoted excerpt, and never
reveals a profile the user may not use.

The contract is ``{"profile": "<slug>", "gpus": <int>, "wait": <bool>}``; ``gpus`` may be
left out (or null) for the profile's default, ``{}`` means the user's default profile, and
``"wait": true`` asks to wait in line when the GPUs are busy (a GPU choice only). A GPU count is a
whole number: an int (not a bool, not a float, so ``2.0`` is refused) or a string of ASCII
digits such as ``"2"`` (what a form posts). Where the admin set DockerSpawner's
`allowed_images`, ``{"image": "<key>"}`` chooses among them as it does in DockerSpawner.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

from .profiles import SLUG_MAX, Profile, default_profile
from .quoting import join_counts, plural_s, quote, short_int, user_type

__all__ = ["Choice", "UserOptionsError", "parse_gpu_count", "validate_user_options"]

OPTION_KEYS = ("profile", "gpus", "image", "wait")
# A GPU count string is at most this many ASCII digits (anything longer is absurd).
_GPU_DIGITS_RE = re.compile(r"^[0-9]{1,6}$")
IMAGE_MAX = 255


class UserOptionsError(ValueError):
    """A user's choice is not acceptable; `field` is the option at fault."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Choice:
    """A validated user choice: which profile, how many GPUs, and whether to wait for them."""

    profile: Profile
    gpus: int
    wait: bool = False  # when the GPUs are busy: a place in line instead of a refusal


def validate_user_options(
    options: object,
    visible: list[Profile],
    *,
    images: Mapping[str, str] | str | None = None,
    gpus_on_host: int | None = None,
) -> Choice:
    """Turn user_options into a Choice among `visible`, or raise UserOptionsError.

    `visible` must already be limited to what this user may use (`profiles_for_user`), so
    a profile hidden from the user is refused exactly like one that does not exist.
    `images` is DockerSpawner's `allowed_images` (a dict, or "*"), which makes the
    ``{"image": ...}`` option valid; `gpus_on_host` 0 refuses any GPU (None: not known).
    """
    choice = _choose(options, visible, images)
    if isinstance(options, Mapping) and "wait" in options:
        choice = replace(choice, wait=_parse_wait(options["wait"], choice.gpus))
    if choice.gpus and gpus_on_host == 0:
        # Profiles may offer GPUs on hosts that have none (a shared config); be plain.
        raise UserOptionsError(
            "This host has no GPUs to give; pick a profile with 0 GPUs (CPU only).", field="gpus"
        )
    return choice


def _choose(
    options: object, visible: list[Profile], images: Mapping[str, str] | str | None
) -> Choice:
    if not isinstance(options, Mapping):
        raise UserOptionsError(
            f'Server options must be an object such as {{"profile": "cpu"}}, not '
            f"{user_type(options)}.",
            field="user_options",
        )
    unknown = [k for k in options if k not in OPTION_KEYS]
    if unknown:
        more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
        first = unknown[0]
        shown = quote(first) if isinstance(first, str) else user_type(first)
        raise UserOptionsError(
            f"Unknown option {shown}{more}. Only 'profile', 'gpus' and 'wait' are accepted.",
            field=first if isinstance(first, str) and len(first) <= SLUG_MAX else "user_options",
        )

    if not visible:
        raise UserOptionsError(
            "No server profile is available to your account. Ask your administrator for access.",
            field="profile",
        )

    if not {k: v for k, v in options.items() if k != "wait"}:
        profile = default_profile(visible)
        assert profile is not None  # visible is not empty
        return Choice(profile, profile.gpu_default)

    if "image" in options:
        profile = _chosen_image(options, visible, images)
    else:
        profile = _chosen_profile(options.get("profile"), "profile" in options, visible)
    raw = options.get("gpus")
    if raw is None:  # left out or null: the profile's default
        return Choice(profile, profile.gpu_default)
    gpus = parse_gpu_count(raw)
    if gpus not in profile.gpu_choices:
        raise UserOptionsError(_not_offered(profile, gpus), field="gpus")
    return Choice(profile, gpus)


def _chosen_image(
    options: Mapping, visible: list[Profile], images: Mapping[str, str] | str | None
) -> Profile:
    """DockerSpawner's ``{"image": ...}``: honoured as it does, through `allowed_images`."""
    if not images:
        raise UserOptionsError(
            "Choosing an image is not allowed on this hub. "
            f"Pick a profile instead: {_offered(visible)}.",
            field="image",
        )
    if "profile" in options:
        raise UserOptionsError("Send 'profile' or 'image', not both.", field="image")
    value = options["image"]
    if not isinstance(value, str) or not value or len(value) > IMAGE_MAX:
        raise UserOptionsError(
            f"'image' must be an image name, not {user_type(value)}.", field="image"
        )
    default = default_profile(visible)
    if images == "*" and default is not None:
        return replace(default, image=value)
    if isinstance(images, Mapping) and value in images:
        for p in visible:
            if p.image == images[value]:
                return p
    allowed = ", ".join(quote(str(k)) for k in images) if isinstance(images, Mapping) else ""
    raise UserOptionsError(
        f"The image {quote(value)} is not offered. Pick one of: {allowed}.", field="image"
    )


def _offered(visible: list[Profile]) -> str:
    return ", ".join(repr(p.slug) for p in visible)


def _chosen_profile(value: object, given: bool, visible: list[Profile]) -> Profile:
    if not given or value == "":
        raise UserOptionsError(
            f"No profile was chosen. Pick one of: {_offered(visible)}.", field="profile"
        )
    if not isinstance(value, str):
        raise UserOptionsError(
            f"'profile' must be a profile name (text), not {user_type(value)}. "
            f"Pick one of: {_offered(visible)}.",
            field="profile",
        )
    if len(value) > SLUG_MAX:
        raise UserOptionsError(
            f"The profile name is too long ({len(value)} characters; profile names have at "
            f"most {SLUG_MAX}). Pick one of: {_offered(visible)}.",
            field="profile",
        )
    for p in visible:
        if p.slug == value:
            return p
    # One message for unknown, removed since last time, and not allowed for this user.
    raise UserOptionsError(
        f"The profile {quote(value)} is not offered (or no longer offered). "
        f"Pick one of: {_offered(visible)}.",
        field="profile",
    )


def _parse_wait(value: object, gpus: int) -> bool:
    """'wait': true or false (JSON), or a form checkbox's "on"; only a GPU choice waits."""
    if value in (True, "on", "true", "1"):
        if gpus == 0:
            raise UserOptionsError(
                "'wait' is for GPUs: this choice asks for none, so it starts without waiting.",
                field="wait",
            )
        return True
    if value in (False, None, "false", "0", ""):
        return False
    raise UserOptionsError(f"'wait' must be true or false, not {user_type(value)}.", field="wait")


def parse_gpu_count(value: object) -> int:
    """A GPU count from JSON or a form: an int (not bool or float) or a string of digits."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise UserOptionsError(
            f"'gpus' must be a whole number such as 1, not {user_type(value)}.", field="gpus"
        )
    if isinstance(value, str):
        if not _GPU_DIGITS_RE.match(value):
            raise UserOptionsError(
                f"'gpus' must be a whole number such as 1, not {quote(value)}.", field="gpus"
            )
        value = int(value)
    if value < 0:
        raise UserOptionsError(f"'gpus' cannot be negative (got {short_int(value)}).", field="gpus")
    return value


def _not_offered(profile: Profile, gpus: int) -> str:
    shown = short_int(gpus)
    if not profile.offers_gpu_choice:
        return (
            f"The profile {profile.slug!r} comes with exactly {profile.gpu_default} "
            f"GPU{plural_s(profile.gpu_default)}, so 'gpus' cannot be {shown}; "
            f"leave 'gpus' out or send {profile.gpu_default}."
        )
    return (
        f"The profile {profile.slug!r} offers {join_counts(profile.gpu_choices)} GPUs, not {shown}."
    )
