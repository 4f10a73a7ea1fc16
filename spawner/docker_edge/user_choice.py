"""The user's choice on the Docker edge: the spawn form, JupyterHub's option hooks, and the
one validation of a choice per start. A mixin of CUDADockerSpawner (and so of the Swarm
spawner, which only counts the form's free GPUs its own way: `_form_gpus`).
"""

from __future__ import annotations

import inspect

from traitlets import HasTraits, TraitError, default, validate

from ..engine import failures
from ..planning import option_hooks
from ..planning.availability import profile_availability
from ..planning.choice import Choice, UserOptionsError, validate_user_options
from ..planning.form import SiteLimits, spawn_form
from ..planning.profiles import Profile, ProfileConfigError, profiles_for_user, site_profiles
from ..services.hub_metrics import record_refusal
from .progress import Progress
from .usage_record import usage_note_html


class UserChoice(HasTraits):
    """Profiles a user may pick, the form that offers them, and the checked choice."""

    @default("options_form")
    def _default_options_form(self):
        allowed = self._get_allowed_images()
        if not self.profiles and (allowed == "*" or len(allowed) <= 1):
            return ""  # nothing to choose: start straight away, as DockerSpawner does
        return UserChoice._options_form_html

    @default("options_from_form")
    def _default_options_from_form(self):
        return option_hooks.form_options

    @default("apply_user_options")
    def _default_apply_user_options(self):
        return UserChoice._choose

    @validate("apply_user_options")
    def _validate_apply_user_options(self, proposal):
        try:
            return option_hooks.after(UserChoice._choose, proposal.value)
        except ValueError as e:
            raise TraitError(f"CUDADockerSpawner.{e}") from None

    async def _choose(self, user_options: dict) -> None:
        """apply_user_options: validate the choice once per start, before anything is made."""
        self._start, self._progress = None, Progress()
        self._choice = await self.validated_choice(user_options)
        self._allow_waiting(self._choice)

    # --- data this spawner hands the pure modules ----------------------------------------
    def _group_names(self) -> list[str]:
        return [g.name for g in getattr(self.user, "groups", [])]

    def _site_image(self) -> str:
        if self._image_set and self.image == self._image_set[1]:
            return self._image_set[0]
        return self.image

    async def _visible_profiles(self) -> list[Profile]:
        raw = await self._evaluated(self.profiles)
        try:
            profiles = site_profiles(raw, self._get_allowed_images(), self._site_image())
        except ProfileConfigError as e:
            # The admin's mistake, not the user's: logged in full, a sentence for the user.
            self.log.error("CUDADockerSpawner.profiles is invalid: %s", e)
            raise failures.user_error(
                500, "The server profiles are misconfigured; please tell your administrator."
            ) from None
        return profiles_for_user(profiles, self.user.name, self._group_names())

    # --- the form and the user's choice ------------------------------------------------
    async def _options_form_html(self) -> str:
        """The spawn form: the user's profiles, their last choice, and GPUs free right now."""
        visible = await self._visible_profiles()
        free, total, per_profile = await self._form_gpus(visible)
        figures, warned = await self._usage_note()
        return usage_note_html(figures, warned) + spawn_form(
            visible,
            self.user_options,
            free=free,
            total=total,
            images=self._get_allowed_images(),
            site=SiteLimits(self.mem_limit, self.cpu_limit),
            template_path=self.options_form_template or None,
            log=self.log,
            per_profile=per_profile,
            can_wait=self.gpu_line,
        )

    async def _form_gpus(self, visible: list[Profile]):
        """(free, total, per profile) GPUs for the form: this host's table, its MIG slices
        per profile, and the profiles whose image cannot run on its GPUs (`image_compat`)."""
        host = await self.gpu_host()
        free = await host.free_count(self._engine)
        reasons = await self._image_refusals(visible)
        slices = host.slice_figures()
        return free, host.total, profile_availability(visible, free, host.total, slices, reasons)

    async def validated_choice(self, user_options: dict) -> Choice:
        """The user's profile and GPU count, or an HTTP 400 whose message says what to fix."""
        visible = await self._visible_profiles()
        total = (await self.gpu_host()).total
        try:
            choice = validate_user_options(
                user_options or {}, visible, images=self._get_allowed_images(), gpus_on_host=total
            )
            if choice.profile.mig and choice.gpus > self.mig_slices_per_server:
                raise UserOptionsError(
                    f"{choice.gpus} MIG slices requested; a server may hold "
                    f"{self.mig_slices_per_server} on this hub (CUDA shows a process one "
                    "MIG device)."
                )
            return choice
        except UserOptionsError as e:
            record_refusal(
                "invalid_choice", user=self.user.name, server=self.server_key, message=str(e)
            )
            raise failures.user_error(400, str(e)) from None

    async def _evaluated(self, value):
        """A setting that may be a callable (possibly async) taking the spawner: its value."""
        value = self._eval_if_callable(value)
        return await value if inspect.isawaitable(value) else value
