"""What one start of one server uses: the validated profile choice and its GPUs.

Built from the user's options before anything is created (`for_spawner`), then handed
to the spawner glue, which asks it for environment, labels and GPU container settings.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from . import errors
from .gpu_host import GpuHost
from .gpu_requests import container_gpu_settings
from .gpus import Gpu, plural
from .labels import container_labels
from .profiles import (
    Profile,
    ProfileConfigError,
    parse_profiles,
    profiles_for_user,
    validate_user_options,
)

if TYPE_CHECKING:
    from .docker_spawner import CUDADockerSpawner


async def load_profiles(spawner: CUDADockerSpawner) -> list[Profile]:
    """The admin's profiles, evaluated for this spawner and validated.

    A broken list is the admin's mistake, not the user's: it is logged in full and the
    user gets a sentence that says so.
    """
    raw = spawner.profiles
    if callable(raw):
        raw = raw(spawner)
        if inspect.isawaitable(raw):
            raw = await raw
    if not raw:
        return [implicit_profile(spawner)]
    try:
        return parse_profiles(list(raw))
    except ProfileConfigError as e:
        spawner.log.error("CUDADockerSpawner.profiles is invalid: %s", e)
        raise errors.user_error(
            500, "The server profiles are misconfigured; please tell your administrator."
        ) from None


def implicit_profile(spawner: CUDADockerSpawner) -> Profile:
    """With no profiles configured: the spawner's image, no GPUs, the admin's limits."""
    return parse_profiles(
        [{"slug": "default", "display_name": "Default", "image": spawner.image, "gpus": 0}]
    )[0]


async def visible_profiles(spawner: CUDADockerSpawner) -> list[Profile]:
    profiles = await load_profiles(spawner)
    groups = [g.name for g in getattr(spawner.user, "groups", [])]
    return profiles_for_user(profiles, spawner.user.name, groups)


@dataclass
class SpawnSettings:
    profile: Profile
    gpu_count: int
    style: str = "device_requests"
    gpus: tuple[Gpu, ...] = field(default=())
    since: str = ""

    @classmethod
    async def for_spawner(cls, spawner: CUDADockerSpawner, options: dict) -> SpawnSettings:
        """Validate `options` against the profiles this user may use (raises UserOptionsError)."""
        choice = validate_user_options(options, await visible_profiles(spawner))
        if choice.gpus and (await GpuHost.for_spawner(spawner)).total == 0:
            # Profiles may offer GPUs on hosts that have none (a shared config); be plain.
            raise errors.user_error(
                400, "This host has no GPUs to give; pick a profile with 0 GPUs (CPU only)."
            )
        return cls(profile=choice.profile, gpu_count=choice.gpus, style=spawner.gpu_request_style)

    async def reserve_gpus(self, spawner: CUDADockerSpawner) -> None:
        if self.gpu_count == 0:
            return
        host = await GpuHost.for_spawner(spawner)
        self.gpus = await host.reserve(spawner, self.gpu_count)
        self.since = datetime.now(timezone.utc).isoformat(timespec="seconds")
        ids = ", ".join(g.id for g in self.gpus)
        spawner._progress(20, f"reserving {plural(len(self.gpus))} ({ids})")

    def environment(self) -> dict[str, str]:
        env = dict(self.profile.environment)
        env.update(self.container_gpu_settings().environment)
        env["CUDASPAWNER_PROFILE"] = self.profile.slug
        return env

    def container_gpu_settings(self):
        return container_gpu_settings(self.style, self.gpus)

    def labels(self, spawner: CUDADockerSpawner) -> dict[str, str]:
        return container_labels(
            user=spawner.user.name,
            server=spawner.server_key,
            gpus=self.gpus,
            since=self.since,
            profile=self.profile.slug,
        )

    def to_state(self) -> dict:
        return {"profile": self.profile.slug, "gpus": [g.id for g in self.gpus]}


async def render_options_form(spawner: CUDADockerSpawner) -> str:
    """The spawn form: the user's profiles, their last choice, and GPUs free right now."""
    from .form import ProfileAvailability

    visible = await visible_profiles(spawner)
    host = await GpuHost.for_spawner(spawner)
    try:
        async with host.allocator.lock:
            await host.ensure_rebuilt(spawner)
    except Exception as e:
        # The form must still open (the engine may be back by the time the user clicks
        # Start); free counts are then unknown rather than wrong.
        spawner.log.warning("Could not read GPU assignments for the form: %s", e)
        return _render(spawner, visible, None, None, host.total)
    free = host.allocator.free_count()
    availability = {}
    for p in visible:
        smallest = min(p.gpu_choices) if p.gpu_choices else 0
        reason = None
        if smallest > free:
            reason = (
                f"needs {smallest} GPU{'s' if smallest != 1 else ''}, {free} free of {host.total}"
            )
        availability[p.slug] = ProfileAvailability(free=free, total=host.total, reason=reason)
    try:
        selected = validate_user_options(spawner.user_options or {}, visible)
    except Exception:  # a stale or refused earlier choice: preselect the default instead
        selected = None
    return _render(spawner, visible, selected, availability, host.total)


def _render(spawner, visible, selected, availability, gpus_on_host: int) -> str:
    from .form import FormTemplateError, render_form

    args = (visible, selected, availability, gpus_on_host)
    try:
        return render_form(*args, template_path=spawner.options_form_template or None)
    except FormTemplateError as e:
        # The admin's template is broken: log it, and let users still pick a profile.
        spawner.log.error("%s Falling back to the built-in form.", e)
        return render_form(*args)
