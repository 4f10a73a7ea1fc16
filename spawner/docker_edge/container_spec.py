"""The Docker edge of a start plan: what DockerSpawner's `create_object` is given.

Pure: a `StartPlan` plus the admin's own `extra_host_config` / `extra_create_kwargs` in,
keyword arguments for docker-py's `create_host_config` and `create_container` out. A
cluster spawner turns the same plan into a service spec instead.
"""

from __future__ import annotations

from ..gpu.device_requests import gpu_host_config
from ..gpu.labels import PLAN_LABEL
from ..planning.plan import StartPlan


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


def made_from(container: dict | None, plan: StartPlan) -> bool:
    """True when an existing container (docker inspect) was created from this same plan.

    With `remove = False` DockerSpawner restarts a stopped container as it was made; only
    one whose GPUs, image, limits, ... are still the plan's may be restarted.
    """
    labels = ((container or {}).get("Config") or {}).get("Labels") or {}
    return labels.get(PLAN_LABEL) == plan.fingerprint
