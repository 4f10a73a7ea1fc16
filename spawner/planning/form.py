"""The spawn form: one card per profile, and the posted form back to user_options.

Pure: `render_form` turns profiles, the user's last choice and GPU availability into the
HTML that JupyterHub puts inside its own spawn `<form>` (which adds the Start button and
`_xsrf`); `options_from_form` turns the posted fields into the user_options contract
``{"profile": slug, "gpus": int}``. Rendering uses Jinja2 with autoescape, so names,
descriptions and error messages are always escaped.

Field names (work without JavaScript): a radio group `profile` (value: the slug) and, per
card whose profile offers a GPU choice, a select `gpus-<slug>`. Only the chosen card's
select is read; plain `gpus` is accepted too (query strings, admin templates).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import jinja2

from .availability import ProfileAvailability
from .choice import Choice, UserOptionsError, parse_gpu_count, validate_user_options
from .profiles import Profile, default_profile

__all__ = [
    "FormTemplateError",
    "GpuOption",
    "ProfileAvailability",
    "ProfileCard",
    "SiteLimits",
    "build_cards",
    "options_from_form",
    "render_form",
    "spawn_form",
]

TEMPLATES = Path(__file__).parents[1] / "templates"
DEFAULT_TEMPLATE = "profiles_form.html"
# Admin templates may `{% extends "cudaspawner/profiles_form.html" %}` and override blocks.
BUILTIN_PREFIX = "cudaspawner"


class FormTemplateError(ValueError):
    """The admin's form template cannot be used (missing file or a syntax error)."""


@dataclass(frozen=True)
class GpuOption:
    count: int
    label: str
    disabled: bool
    selected: bool


@dataclass(frozen=True)
class ProfileCard:
    """What the template shows for one profile (all decisions made here, not in Jinja)."""

    profile: Profile
    checked: bool
    disabled: bool
    reason: str | None
    show_gpus: bool  # False on a host without GPUs
    gpu_options: tuple[GpuOption, ...]  # a select, when the profile offers a choice
    fixed_gpus: int | None  # the count, when there is no choice
    hidden_gpus: int | None  # posted as a hidden field (CPU-only host, choice includes 0)
    free: int | None
    total: int | None
    mem_limit: str | None = (
        None  # the limit this card's server gets: the profile's, else the site's
    )
    cpu_limit: str | None = None
    wait_offered: bool = False  # some count is not free now: "wait in line" can be asked
    wait_checked: bool = False  # none is: waiting is what starting means

    @property
    def slug(self) -> str:
        return self.profile.slug

    @property
    def gpu_field(self) -> str:
        return f"gpus-{self.profile.slug}"

    @property
    def wait_field(self) -> str:
        return f"wait-{self.profile.slug}"

    @property
    def fixed_gpus_label(self) -> str:
        return "" if self.fixed_gpus is None else _gpus_label(self.fixed_gpus, self.profile.mig)

    @property
    def dom_id(self) -> str:
        return f"cudaspawner-profile-{self.profile.slug}"


def _gpus_label(n: int, mig: str = "") -> str:
    if n == 0:
        return "0 GPUs (CPU only)"
    unit = f"MIG {mig} slice" if mig else "GPU"
    return f"{n} {unit}" if n == 1 else f"{n} {unit}s"


def memory_label(value: int | str | None) -> str | None:
    """A memory limit for people: '32G' as written, bytes in the largest exact unit."""
    if not value:  # DockerSpawner's 0 (and None) mean no limit: nothing to show
        return None
    if isinstance(value, str):
        return value
    for unit, size in (("T", 1024**4), ("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if value and value % size == 0:
            return f"{value // size}{unit}"
    return f"{value} bytes"


@dataclass(frozen=True)
class SiteLimits:
    """The site's own limits (DockerSpawner's `mem_limit`, `cpu_limit`), shown where a
    profile sets none."""

    mem_limit: int | str | None = None
    cpu_limit: float | None = None


def _card(
    profile: Profile,
    availability: ProfileAvailability | None,
    gpus_on_host: int,
    wanted_gpus: int,
    site: SiteLimits = SiteLimits(),
    can_wait: bool = False,
) -> ProfileCard:
    free = availability.free if availability else None
    reason = availability.reason if availability else None
    total = availability.total if availability else gpus_on_host
    # With the line for busy GPUs, a count the pool has but not free now can be waited for
    # (whole GPUs only: the line does not hand out MIG slices).
    waitable = can_wait and gpus_on_host > 0 and reason is None and free is not None
    waitable = waitable and not profile.mig
    if gpus_on_host <= 0:
        free = 0
        if reason is None and profile.min_gpus > 0:
            reason = "This host has no GPUs"
    elif reason is None and profile.mig and total == 0:
        reason = f"This host has no MIG {profile.mig} slices"
    elif reason is None and free is not None and profile.min_gpus > free:
        if not (waitable and profile.min_gpus <= total):
            label = _gpus_label(profile.min_gpus, profile.mig)
            reason = f"needs {label}, {free} free of {total}"
    disabled = reason is not None

    def unavailable(n: int) -> bool:
        short = free is not None and n > free
        return disabled or (short and not (waitable and n <= total))

    options: list[tuple[int, bool]] = [(n, unavailable(n)) for n in profile.gpu_choices]
    enabled = [n for n, off in options if not off]
    # Preselect the wanted count if it can be had, else the nearest smaller one, else the
    # smallest available: a disabled selected option would be left out of the post.
    pick = wanted_gpus if wanted_gpus in enabled else None
    if pick is None and enabled:
        smaller = [n for n in enabled if n <= wanted_gpus]
        pick = max(smaller) if smaller else min(enabled)

    gpu_options: tuple[GpuOption, ...] = ()
    if profile.offers_gpu_choice and gpus_on_host > 0:
        gpu_options = tuple(
            GpuOption(
                count=n,
                label=_gpus_label(n, profile.mig) + _short_note(n, off, disabled, free),
                disabled=off,
                selected=n == pick,
            )
            for n, off in options
        )
    cpu = profile.cpu_limit if profile.cpu_limit is not None else site.cpu_limit
    hidden = None
    if gpus_on_host <= 0 and profile.offers_gpu_choice and 0 in profile.gpu_choices:
        hidden = 0
    return ProfileCard(
        profile=profile,
        checked=False,
        disabled=disabled,
        reason=reason,
        show_gpus=gpus_on_host > 0,
        gpu_options=gpu_options,
        fixed_gpus=None if profile.offers_gpu_choice else profile.gpu_default,
        hidden_gpus=hidden,
        free=free if gpus_on_host > 0 else None,
        total=(availability.total if availability else gpus_on_host) if gpus_on_host else None,
        mem_limit=memory_label(profile.mem_limit or site.mem_limit),
        cpu_limit=f"{cpu:g}" if cpu else None,  # 0 is DockerSpawner's "no limit"
        wait_offered=waitable and not disabled and profile.max_gpus > (free or 0),
        wait_checked=waitable and not disabled and profile.min_gpus > (free or 0),
    )


def _short_note(n: int, off: bool, disabled: bool, free: int | None) -> str:
    if off and not disabled:
        return f" (only {free} free)"
    if not off and free is not None and n > free:
        return " (wait in line)"
    return ""


def build_cards(
    visible: Sequence[Profile],
    selected: Choice | None,
    availability: Mapping[str, ProfileAvailability] | None,
    gpus_on_host: int,
    site: SiteLimits = SiteLimits(),
    can_wait: bool = False,
) -> list[ProfileCard]:
    """One card per visible profile; the last choice (else the default) is checked."""
    availability = availability or {}
    cards = []
    for p in visible:
        wanted = selected.gpus if selected and selected.profile.slug == p.slug else p.gpu_default
        cards.append(_card(p, availability.get(p.slug), gpus_on_host, wanted, site, can_wait))
    usable = [c for c in cards if not c.disabled]
    preferred = [selected.profile.slug] if selected else []
    fallback = default_profile([c.profile for c in usable])
    if fallback:
        preferred.append(fallback.slug)
    for slug in preferred:
        hit = next((c for c in usable if c.slug == slug), None)
        if hit:
            return [_with_checked(c, c is hit) for c in cards]
    return cards


def _with_checked(card: ProfileCard, checked: bool) -> ProfileCard:
    return replace(card, checked=checked)


@functools.lru_cache(maxsize=8)
def _environment(template_dir: str | None) -> jinja2.Environment:
    builtin = jinja2.FileSystemLoader(str(TEMPLATES))
    loaders: list[jinja2.BaseLoader] = []
    if template_dir is not None:
        loaders.append(jinja2.FileSystemLoader(template_dir))
    loaders.append(jinja2.PrefixLoader({BUILTIN_PREFIX: builtin}))
    loaders.append(builtin)
    # autoescape=True: every {{ value }} is HTML-escaped, whatever the template's name.
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _template(template_path: str | None) -> jinja2.Template:
    if not template_path:
        return _environment(None).get_template(DEFAULT_TEMPLATE)
    path = Path(template_path).expanduser().resolve()
    if not path.is_file():
        raise FormTemplateError(
            f"The spawn form template {template_path!r} (options_form_template) does not "
            "exist. Fix the path, or set it to '' for the built-in form."
        )
    try:
        return _environment(str(path.parent)).get_template(path.name)
    except jinja2.TemplateSyntaxError as e:
        raise FormTemplateError(
            f"The spawn form template {template_path!r} has an error on line {e.lineno}: "
            f"{e.message}"
        ) from None


def render_form(
    visible: Sequence[Profile],
    selected: Choice | None,
    availability: Mapping[str, ProfileAvailability] | None,
    gpus_on_host: int,
    template_path: str | None = None,
    error: str | None = None,
    site: SiteLimits = SiteLimits(),
    can_wait: bool = False,
) -> str:
    """The HTML for inside JupyterHub's spawn form.

    `availability` maps slug -> ProfileAvailability (None: unknown, nothing disabled for
    lack of GPUs); `gpus_on_host` 0 hides every GPU choice. `template_path` is the admin's
    template (see templates/profiles_form.html for the variables it receives); `site`
    gives the limits shown on cards whose profile sets none; `can_wait` offers the line for
    busy GPUs where a count is not free now.
    """
    cards = build_cards(visible, selected, availability, gpus_on_host, site, can_wait)
    return _template(template_path).render(
        cards=cards,
        profiles=list(visible),
        error=error,
        gpus_on_host=gpus_on_host,
    )


def spawn_form(
    visible: Sequence[Profile],
    last_options: object,
    *,
    free: int | None,
    total: int,
    images: Mapping[str, str] | str | None = None,
    site: SiteLimits = SiteLimits(),
    template_path: str | None = None,
    log: logging.Logger | None = None,
    per_profile: Mapping[str, ProfileAvailability] | None = None,
    can_wait: bool = False,
) -> str:
    """One user's spawn form: their last choice preselected while it is still valid, the
    GPUs free now (`free` None: unknown, nothing disabled for lack of GPUs). `per_profile`
    gives each profile its own figures instead (a cluster: the nodes that profile may use).

    A broken admin template is logged and the built-in form used, so users can still start.
    """
    availability = dict(per_profile) if per_profile is not None else None
    if availability is None and free is not None:
        availability = {p.slug: ProfileAvailability(free, total) for p in visible}
    try:
        selected = validate_user_options(last_options or {}, list(visible), images=images)
    except UserOptionsError:  # a stale earlier choice: preselect the default instead
        selected = None
    args = (visible, selected, availability, total)
    try:
        return render_form(*args, template_path=template_path, site=site, can_wait=can_wait)
    except FormTemplateError as e:
        (log or logging.getLogger(__name__)).error("%s Falling back to the built-in form.", e)
        return render_form(*args, site=site, can_wait=can_wait)


def _single(formdata: Mapping[str, object], key: str) -> str | None:
    """One posted value: JupyterHub gives lists of strings; query-style plain strings too."""
    values = formdata.get(key)
    if values is None:
        return None
    if isinstance(values, str):
        return values
    if not isinstance(values, (list, tuple)) or not all(isinstance(v, str) for v in values):
        raise UserOptionsError(f"The form field {key!r} is malformed.", field=key)
    if len(values) != 1:
        if not values:
            return None
        raise UserOptionsError(
            f"The form field {key!r} was sent {len(values)} times; send it once.", field=key
        )
    return values[0]


def options_from_form(formdata: Mapping[str, object]) -> dict:
    """Posted form fields -> {"profile": slug, "gpus": int} (keys left out when not sent).

    Other fields (JupyterHub's `_xsrf`, the selects of cards not chosen) are ignored; a
    GPU count that is not a whole number raises UserOptionsError. Whether the profile and
    count are allowed is `validate_user_options`'s job. DockerSpawner's `image` field is
    passed on as it does (its first value), for sites that use `allowed_images`.
    """
    options: dict = {}
    images = formdata.get("image")
    if isinstance(images, (list, tuple)) and images and isinstance(images[0], str):
        options["image"] = images[0]
    elif isinstance(images, str):
        options["image"] = images
    profile = _single(formdata, "profile")
    if profile is not None:
        options["profile"] = profile
    gpus = None
    if profile:
        gpus = _single(formdata, f"gpus-{profile}")
    if gpus is None:
        gpus = _single(formdata, "gpus")
    if gpus is not None:
        options["gpus"] = parse_gpu_count(gpus)
    if profile and _single(formdata, f"wait-{profile}") is not None:
        options["wait"] = True  # the chosen card's "wait in line" box (a checkbox posts "on")
    return options
