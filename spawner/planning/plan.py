"""Everything one start of one server gives its container, worked out once, as plain data.

Pure: no JupyterHub, no Docker, no clock. The spawner gathers the inputs (the validated
choice, the user, the GPUs reserved, the inspected image, the site's settings) and calls
`make_plan` once per start; it then only translates the plan for its engine (the Docker
spawner into `create_container` arguments and a host config; a cluster spawner could turn
the same plan into a service spec). Each decision is made here and nowhere else: which
image, which user, which command, which environment, labels, mounts, limits, security
options and GPUs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace

from ..accounts.usernames import HOME_VOLUME_TEMPLATE
from ..engine.hub_identity import HUB_LABEL
from ..gpu.allocator import Gpu
from ..gpu.device_requests import REQUEST_STYLES, gpu_environment
from ..gpu.labels import PLAN_LABEL, container_labels
from ..sizes import JUPYTERHUB, size_bytes
from .choice import Choice
from .hardening import Hardening, RootUserRefused, docker_socket_mounts, resolve_container_user

__all__ = [
    "ImageFacts",
    "PlanRefused",
    "SiteSettings",
    "StartPlan",
    "UnsafeMount",
    "image_facts",
    "make_plan",
]


class PlanRefused(ValueError):
    """The site's settings make a container that must not run; `public` is for the user."""

    def __init__(self, message: str, public: str) -> None:
        super().__init__(message)
        self.public = public


class UnsafeMount(PlanRefused):
    """A mount would hand the container the Docker engine (root on the host)."""

    def __init__(self, sockets: list[str]) -> None:
        super().__init__(
            f"Refusing to mount the Docker socket into a user container: {sockets}",
            "This server's configuration is unsafe; please tell your administrator.",
        )


@dataclass(frozen=True)
class ImageFacts:
    """What the engine says about the image a profile names."""

    name: str  # as the profile (or the site) names it: repo:tag or repo@sha256:...
    digest: str  # repo@sha256:... where the image came from a registry, else its id
    user: str = ""  # the image's configured user ("" is root)
    command: tuple[str, ...] = ()


def image_facts(name: str, inspected: Mapping) -> ImageFacts:
    """ImageFacts from docker `inspect_image` output; the digest of `name`'s repository first."""
    repo = _repository(name)
    digests = list(inspected.get("RepoDigests") or [])
    digest = next((d for d in digests if d.split("@", 1)[0] == repo), "")
    digest = digest or (digests[0] if digests else str(inspected.get("Id", "")))
    config = inspected.get("Config") or {}
    return ImageFacts(
        name=name,
        digest=digest,
        user=config.get("User") or "",
        command=tuple(config.get("Cmd") or ()),
    )


def _repository(name: str) -> str:
    """'reg:5000/team/img:tag' -> 'reg:5000/team/img' (a registry port is not a tag)."""
    head, _, last = name.split("@", 1)[0].rpartition("/")
    last = last.split(":", 1)[0]
    return f"{head}/{last}" if head else last


@dataclass(frozen=True)
class SiteSettings:
    """The admin's settings that shape every container (the spawner's traitlets, as data)."""

    container_user: str = ""
    allow_root: bool = False
    hardening: Hardening = Hardening()
    mem_limit: int | str | None = None  # bytes, or "8G"
    cpu_limit: float | None = None
    home_volume: str = HOME_VOLUME_TEMPLATE
    home_path: str = "/home/jovyan"
    volumes: dict = field(default_factory=dict)  # DockerSpawner's `volumes` format
    gpu_request_style: str = "device_requests"
    cmd: tuple[str, ...] = ()  # empty: the image's own command
    hub_id: str = ""  # this deployment's identity, labelled on what it creates (ownership)


@dataclass(frozen=True)
class StartPlan:
    """What one container is: the same plan on every engine."""

    user_name: str
    server_key: str
    profile: str
    image: str
    image_digest: str
    user: str  # uid:gid (or name) the container runs as; never root unless allowed
    command: tuple[str, ...]  # without JupyterHub's own arguments
    environment: dict[str, str]
    labels: dict[str, str]
    mounts: dict  # source -> target, or {"bind": target, "mode": "ro"|"rw"}
    mem_limit: int | None  # bytes
    cpu_limit: float | None
    hardening: Hardening  # capabilities, no-new-privileges, pids, /dev/shm
    gpu_style: str
    gpu_ids: tuple[str, ...]  # the hub's choice; empty where the engine picks (Swarm)
    address: str = ""  # internal TLS: the container's planned address on its network
    gpu_count: int = 0  # the GPUs the server asked for (len(gpu_ids) where the hub picks)

    @property
    def fingerprint(self) -> str:
        """Equal for two plans that would make the same container (a restart may reuse it)."""
        return self.labels[PLAN_LABEL]


def memory_bytes(value: int | str | None) -> int | None:
    """A memory limit in bytes: an int, or "8G" (JupyterHub's K, M, G, T: powers of 1024)."""
    try:
        return size_bytes(value, JUPYTERHUB)
    except ValueError:
        raise ValueError(f"{value!r} is not a memory size such as '8G'.") from None


def make_plan(
    choice: Choice,
    *,
    user_name: str,
    server_key: str,
    site: SiteSettings,
    image: ImageFacts,
    gpus: Iterable[Gpu | str] = (),
    since: str = "",
    address: str = "",
) -> StartPlan:
    """The container for this start. Raises PlanRefused (the admin's to fix).

    `gpus` are those the hub reserved for the choice's GPU count; none where the engine
    assigns them itself (a Swarm service reserves a count, its task learns the ids).
    """
    profile = choice.profile
    if site.gpu_request_style not in REQUEST_STYLES:
        raise ValueError(f"Unknown GPU request style {site.gpu_request_style!r}.")
    gpu_ids = tuple(g.id if isinstance(g, Gpu) else str(g) for g in gpus)
    if gpu_ids and len(gpu_ids) != choice.gpus:
        raise ValueError(f"{len(gpu_ids)} GPUs reserved for a choice of {choice.gpus}.")
    try:
        user = resolve_container_user(site.container_user, image.user, site.allow_root)
    except RootUserRefused as e:
        raise PlanRefused(str(e), str(e)) from None
    mem_limit = memory_bytes(profile.mem_limit or site.mem_limit)
    cpu_limit = profile.cpu_limit if profile.cpu_limit is not None else site.cpu_limit
    hardening = replace(site.hardening, shm_size=profile.shm_size or site.hardening.shm_size)

    mounts = dict(site.volumes)
    if site.home_volume and site.home_path:
        mounts.setdefault(site.home_volume, site.home_path)
    mounts.update(profile.volumes)
    sockets = docker_socket_mounts(mounts)
    if sockets:
        raise UnsafeMount(sockets)

    environment = dict(profile.environment)
    if gpu_ids or not choice.gpus:  # engine-assigned GPUs: its task names them itself
        environment.update(gpu_environment(gpu_ids))
    # JupyterHub's names for the limits (jupyter-resource-usage reads them): the effective ones.
    if mem_limit is not None:
        environment["MEM_LIMIT"] = str(mem_limit)
    if cpu_limit is not None:
        environment["CPU_LIMIT"] = f"{cpu_limit:g}"
    environment.update(
        CUDASPAWNER_PROFILE=profile.slug,
        CUDASPAWNER_IMAGE=image.name,
        CUDASPAWNER_IMAGE_DIGEST=image.digest,
    )
    command = site.cmd or image.command

    definition = {
        "profile": profile.slug,
        "image": image.name,
        "image_digest": image.digest,
        "user": user,
        "command": list(command),
        "environment": environment,
        "mounts": mounts,
        "mem_limit": mem_limit,
        "cpu_limit": cpu_limit,
        "hardening": asdict(hardening),
        "gpu_style": site.gpu_request_style if gpu_ids else "",
        "gpu_ids": list(gpu_ids),
        "gpu_count": choice.gpus,
        "address": address,
    }
    labels = container_labels(
        user=user_name,
        server=server_key,
        gpus=gpu_ids,
        gpu_count=choice.gpus,
        since=since,
        profile=profile.slug,
        image=image.name,
        image_digest=image.digest,
    )
    if site.hub_id:
        labels[HUB_LABEL] = site.hub_id
    labels[PLAN_LABEL] = _fingerprint(definition)
    return StartPlan(
        user_name=user_name,
        server_key=server_key,
        profile=profile.slug,
        image=image.name,
        image_digest=image.digest,
        user=user,
        command=tuple(command),
        environment=environment,
        labels=labels,
        mounts=mounts,
        mem_limit=mem_limit,
        cpu_limit=cpu_limit,
        hardening=hardening,
        gpu_style=site.gpu_request_style,
        gpu_ids=gpu_ids,
        address=address,
        gpu_count=choice.gpus,
    )


def _fingerprint(definition: dict) -> str:
    text = json.dumps(definition, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
