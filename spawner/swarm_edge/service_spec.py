"""The Swarm edge of a start plan: the service spec, as plain data.

Pure: `swarm_start` turns a `StartPlan` (the same one the Docker edge turns into a
container) and the placement constraints into a `SwarmStart` once per start;
`service_spec` completes it at creation (name, JupyterHub's environment and arguments,
published port) into the Docker API's own service spec, which docker-py's
`create_service` takes as is. Differences from a container, each forced by Swarm:

- GPUs are a generic-resource reservation (`NVIDIA-GPU=N`, the plan's `gpu_count`): Swarm
  picks node and devices, so the plan carries no GPU ids; the entrypoint
  (`task_entrypoint`) maps Swarm's assignment to NVIDIA_VISIBLE_DEVICES inside the task.
- /dev/shm is a tmpfs mount (services have no shm size); no-new-privileges has no field in
  the service API of Docker 20.10 (docs/swarm.md).
- The port is published in host mode on the node and the endpoint is DNS round robin:
  the routing mesh needs IPVS, which not every kernel has.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..docker_edge.container_spec import EngineStart, hook_fields
from ..gpu.cluster import GPU_KIND
from ..planning.plan import StartPlan
from ..sizes import DOCKER, size_bytes

ENTRYPOINT_SOURCE = (Path(__file__).with_name("task_entrypoint.py")).read_text()


def mounts(plan_mounts: Mapping) -> list[dict]:
    """DockerSpawner-style mounts -> Swarm mounts: a path is a bind, a name a volume.

    A volume is local to the node the task lands on unless the admin's volume driver
    says otherwise (docs/swarm.md: home directories on a cluster).
    """
    found = []
    for source, target in plan_mounts.items():
        bind, mode = (
            (target, "rw")
            if isinstance(target, str)
            else (target["bind"], target.get("mode", "rw"))
        )
        found.append(
            {
                "Type": "bind" if str(source).startswith("/") else "volume",
                "Source": str(source),
                "Target": bind,
                "ReadOnly": mode == "ro",
            }
        )
    return found


def task_environment(env: Mapping[str, str], gpu_count: int) -> list[str]:
    """The task's environment. With GPUs, NVIDIA_VISIBLE_DEVICES is the entrypoint's to set
    from Swarm's assignment (not an admin's `environment`); without, the plan's "void"."""
    merged = dict(env)
    if gpu_count:
        merged.pop("NVIDIA_VISIBLE_DEVICES", None)
    return [f"{k}={v}" for k, v in merged.items()]


@dataclass(frozen=True)
class SwarmStart(EngineStart):
    """A service for this start: its spec, less what is known only at creation."""

    gpu_count: int = 0
    spec: dict = field(default_factory=dict)


def swarm_start(
    plan: StartPlan,
    *,
    constraints: Iterable[str] = (),
    network: str = "",
    port: int = 8888,
) -> SwarmStart:
    """The plan as a Swarm service: everything but its name, JupyterHub's environment and
    arguments, and the published port (`service_spec` adds them at creation)."""
    hardening = plan.hardening
    container_mounts = mounts(plan.mounts)
    if hardening.shm_size:
        container_mounts.append(
            {
                "Type": "tmpfs",
                "Target": "/dev/shm",
                "TmpfsOptions": {"SizeBytes": size_bytes(hardening.shm_size, DOCKER)},
            }
        )
    container = {
        "Image": plan.image,
        "User": plan.user,
        "Labels": dict(plan.labels),
        "Mounts": container_mounts,
        "Init": True,  # PID 1 forwards SIGTERM and reaps (a stop is prompt)
        "StopGracePeriod": 10 * 10**9,
    }
    if hardening.cap_drop:
        container["CapabilityDrop"] = list(hardening.cap_drop)
    if hardening.cap_add:
        container["CapabilityAdd"] = list(hardening.cap_add)
    limits: dict = {}
    if plan.mem_limit is not None:
        limits["MemoryBytes"] = plan.mem_limit
    if plan.cpu_limit is not None:
        limits["NanoCPUs"] = int(plan.cpu_limit * 1e9)
    if hardening.pids_limit:
        limits["Pids"] = int(hardening.pids_limit)
    resources: dict = {"Limits": limits}
    if plan.gpu_count:
        resources["Reservations"] = {
            "GenericResources": [
                {"DiscreteResourceSpec": {"Kind": GPU_KIND, "Value": plan.gpu_count}}
            ]
        }
    task = {
        "ContainerSpec": container,
        "Resources": resources,
        # Swarm's agent can reject a freshly scheduled task ("assigned node no longer meets
        # constraints", seen with several GPU tasks scheduled at once): a replacement task
        # is then needed. A server that exits cleanly is over (the hub notices and stops it).
        "RestartPolicy": {"Condition": "on-failure", "MaxAttempts": 3, "Delay": 10**9},
        "Placement": {"Constraints": list(constraints)},
    }
    if network:
        task["Networks"] = [{"Target": network}]
    return SwarmStart(
        **hook_fields(plan),
        gpu_count=plan.gpu_count,
        spec={
            "labels": dict(plan.labels),
            "task_template": task,
            "endpoint_spec": {"Mode": "dnsrr", "Ports": [{"TargetPort": port}]},
        },
    )


def service_spec(
    start: SwarmStart,
    *,
    name: str,
    command: Iterable[str],
    env: Mapping[str, str],
    published_port: int | None = None,
) -> dict:
    """Keyword arguments for docker-py's `APIClient.create_service`."""
    task = copy.deepcopy(start.spec["task_template"])
    container = task["ContainerSpec"]
    container["Command"] = ["python3", "-c", ENTRYPOINT_SOURCE, *command]
    container["Env"] = task_environment(env, start.gpu_count)
    port = start.spec["endpoint_spec"]["Ports"][0]["TargetPort"]
    ports = {"Protocol": "tcp", "TargetPort": port, "PublishMode": "host"}
    if published_port:
        ports["PublishedPort"] = published_port
    return {
        "name": name,
        "labels": dict(start.spec["labels"]),
        "task_template": task,
        "endpoint_spec": {"Mode": "dnsrr", "Ports": [ports]},
    }


def published_ports(services: Iterable[Mapping]) -> set[int]:
    """Host ports the existing services publish (any node)."""
    used = set()
    for s in services:
        for p in ((s.get("Spec") or {}).get("EndpointSpec") or {}).get("Ports") or []:
            if p.get("PublishedPort"):
                used.add(int(p["PublishedPort"]))
    return used


def pick_port(used: set[int], low: int, high: int) -> int:
    """The lowest port of [low, high] no service publishes; ValueError when all are taken."""
    for candidate in range(low, high + 1):
        if candidate not in used:
            return candidate
    raise ValueError(f"All ports {low}-{high} are published by running servers.")
