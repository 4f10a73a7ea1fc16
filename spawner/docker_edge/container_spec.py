"""The Docker edge of a start plan: everything DockerSpawner is given, from one function.

Pure: `docker_start` takes a `StartPlan` plus the admin's own `extra_host_config` /
`extra_create_kwargs` and the container's names, and returns a `DockerStart`: the host
config and create keyword arguments, the environment and command, the certificate's
names and the address. The spawner's hooks read that object and nothing else of the plan.
The Swarm edge turns the same plan into a service spec instead (`swarm_edge.service_spec`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..gpu.device_requests import gpu_host_config
from ..gpu.labels import PLAN_LABEL
from ..planning.plan import StartPlan


@dataclass(frozen=True)
class EngineStart:
    """What a spawner's hooks need of one start, on any engine."""

    profile: str
    fingerprint: str  # equal for two starts that would make the same container
    gpu_ids: tuple[str, ...]
    environment: dict[str, str]  # the plan's; JupyterHub's own is added by get_env
    command: tuple[str, ...]  # without JupyterHub's arguments
    user: str  # uid:gid (or name) the server runs as: the certificates' owner
    address: str = ""  # internal TLS: the planned address ("" lets the engine choose)
    alt_names: tuple[str, ...] = ()  # the server certificate's subject names
    mounts: dict = field(default_factory=dict)  # source -> target (DockerSpawner's format)


@dataclass(frozen=True)
class DockerStart(EngineStart):
    """A container for DockerSpawner's `create_object`: its traits for this start."""

    host_config: dict = field(default_factory=dict)  # extra_host_config
    create_kwargs: dict = field(default_factory=dict)  # extra_create_kwargs


def docker_start(
    plan: StartPlan,
    *,
    admin_host: dict,
    admin_create: dict,
    network: str = "",
    container_name: str = "",
    user_domain: str = "",
) -> DockerStart:
    """The plan as DockerSpawner's traits and hooks take it, with the admin's extras."""
    networking = None
    if plan.address:
        networking = {"EndpointsConfig": {network: {"IPAMConfig": {"IPv4Address": plan.address}}}}
    # The hub and proxy reach the container at its planned address, so the certificate must
    # name it (a hub on the host cannot resolve container names); with a host name per user
    # the proxy checks that name too (the user's alone, not the hub's other names).
    names = [f"DNS:{container_name}"] if container_name else []
    names += [f"IP:{plan.address}"] if plan.address else []
    names += [f"DNS:{user_domain}"] if user_domain else []
    return DockerStart(
        **hook_fields(plan),
        address=plan.address,
        alt_names=tuple(names),
        host_config=host_config(plan, admin_host),
        create_kwargs=create_kwargs(plan, admin_create, networking),
    )


def hook_fields(plan: StartPlan) -> dict:
    """The `EngineStart` fields every engine takes from the plan as they are."""
    return {
        "profile": plan.profile,
        "fingerprint": plan.fingerprint,
        "gpu_ids": plan.gpu_ids,
        "environment": dict(plan.environment),
        "command": plan.command,
        "user": plan.user,
        "mounts": dict(plan.mounts),
    }


def host_config(plan: StartPlan, admin: dict) -> dict:
    """The host config extras: hardening, limits and GPUs, merged with the admin's.

    The admin's extras win over our defaults (explicit relaxing); device requests are ours
    alone, so a user never gets devices they were not given. The admin's `runtime` stays
    unless the plan's GPUs need the nvidia one (NVIDIA_VISIBLE_DEVICES names the GPUs
    either way, `void` for none).
    """
    gpus = gpu_host_config(plan.gpu_style, plan.gpu_ids)
    ours = {**plan.hardening.host_config(), **gpus}
    if plan.mem_limit is not None:
        ours["mem_limit"] = plan.mem_limit
    if plan.cpu_limit is not None:
        period = admin.get("cpu_period", 100_000)  # as DockerSpawner: quota per period
        ours.update(cpu_period=period, cpu_quota=int(plan.cpu_limit * period))
    admin = {k: v for k, v in admin.items() if k != "device_requests"}
    return {**ours, **admin, **gpus}


def create_kwargs(plan: StartPlan, admin: dict, networking_config: object = None) -> dict:
    """The create_container extras: user and labels (both sides' labels; ours win, as
    they carry the GPU assignment the hub rebuilds its table from)."""
    ours: dict = {"user": plan.user}
    if networking_config is not None:
        ours["networking_config"] = networking_config
    labels = {**admin.get("labels", {}), **plan.labels}
    return {**ours, **admin, "labels": labels}


def made_from(container: dict | None, fingerprint: str) -> bool:
    """True when an existing container (docker inspect) was created from the same plan.

    With `remove = False` DockerSpawner restarts a stopped container as it was made; only
    one whose GPUs, image, limits, ... are still the plan's may be restarted.
    """
    labels = ((container or {}).get("Config") or {}).get("Labels") or {}
    return labels.get(PLAN_LABEL) == fingerprint
