"""The GPUs of a Docker Swarm cluster and who holds them, from what the manager reports.

Pure: the inputs are the manager's `nodes`, `tasks` and `services` listings (docker-py's
low-level API output, plain dicts); nothing here talks to Docker. Swarm itself assigns the
devices (generic resources, kind `NVIDIA-GPU`): a node advertises its GPU UUIDs, a task
reserving N of them is given N on one node. The hub reads the result back here to show
free counts, refuse requests no node can satisfy, apply quotas and list who holds what.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from .allocator import GpuAllocationError, plural
from .cuda_compat import ImageNeeds, refusal
from .labels import GPU_COUNT_LABEL, SERVER_LABEL, SINCE_LABEL, USER_LABEL, parse_since

GPU_KIND = "NVIDIA-GPU"  # the generic resource name nodes advertise (docs/swarm.md)
# What a GPU node's driver and cards are, as node labels (`docker node update --label-add`)
# or its engine's labels (dockerd --label): the image check's facts per node (issue 27).
DRIVER_LABEL = "org.cudaspawner.driver"
CAPABILITY_LABEL = "org.cudaspawner.compute-capability"

# Task states in which a task holds (or is about to hold) its assigned resources.
HOLDING_STATES = ("assigned", "accepted", "preparing", "ready", "starting", "running")
_CONSTRAINT = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(==|!=)\s*(.*?)\s*$")


@dataclass(frozen=True)
class ClusterNode:
    """One node as the manager describes it."""

    id: str
    hostname: str
    addr: str = ""
    role: str = "worker"
    labels: dict[str, str] = field(default_factory=dict, hash=False)
    engine_labels: dict[str, str] = field(default_factory=dict, hash=False)
    os: str = "linux"
    arch: str = "x86_64"
    gpus: tuple[str, ...] = ()  # UUIDs advertised as NVIDIA-GPU
    usable: bool = True  # ready and active: the scheduler may place tasks there

    def fact(self, label: str) -> str:
        """A node's own fact: its node label, else its engine's label ("" when neither)."""
        return (self.labels.get(label) or self.engine_labels.get(label) or "").strip()

    @property
    def driver(self) -> str:
        return self.fact(DRIVER_LABEL)

    @property
    def compute_capability(self) -> str:
        return self.fact(CAPABILITY_LABEL)


@dataclass(frozen=True)
class ClusterHolding:
    """One GPU held by one user's task, on one node."""

    gpu: str
    node: str  # hostname
    user: str
    server: str
    service: str
    since: datetime | None = None


def nodes_from_api(nodes: Iterable[Mapping]) -> list[ClusterNode]:
    """ClusterNodes from `APIClient.nodes()`."""
    found = []
    for n in nodes:
        spec, desc, status = n.get("Spec") or {}, n.get("Description") or {}, n.get("Status") or {}
        platform = desc.get("Platform") or {}
        gpus = tuple(
            r["NamedResourceSpec"]["Value"]
            for r in (desc.get("Resources") or {}).get("GenericResources") or []
            if (r.get("NamedResourceSpec") or {}).get("Kind") == GPU_KIND
        )
        found.append(
            ClusterNode(
                id=n["ID"],
                hostname=desc.get("Hostname", ""),
                addr=status.get("Addr", ""),
                role=spec.get("Role", "worker"),
                labels=dict(spec.get("Labels") or {}),
                engine_labels=dict((desc.get("Engine") or {}).get("Labels") or {}),
                os=platform.get("OS", ""),
                arch=platform.get("Architecture", ""),
                gpus=gpus,
                usable=status.get("State") == "ready" and spec.get("Availability") == "active",
            )
        )
    return found


def _holds(task: Mapping) -> bool:
    state = ((task.get("Status") or {}).get("State") or "").lower()
    return task.get("DesiredState") == "running" and state in HOLDING_STATES


def assigned_gpus(task: Mapping) -> tuple[str, ...]:
    """The GPU UUIDs Swarm gave a task (empty until it is scheduled)."""
    return tuple(
        r["NamedResourceSpec"]["Value"]
        # "GenericResources" in the task (API 1.41); newer engines name it "Assigned...".
        for r in task.get("AssignedGenericResources") or task.get("GenericResources") or []
        if (r.get("NamedResourceSpec") or {}).get("Kind") == GPU_KIND
    )


def free_gpus(nodes: Sequence[ClusterNode], tasks: Iterable[Mapping]) -> dict[str, tuple[str, ...]]:
    """Node id -> its GPUs no live task holds (usable nodes only)."""
    held: dict[str, set[str]] = {}
    for t in tasks:
        if _holds(t):
            held.setdefault(t.get("NodeID", ""), set()).update(assigned_gpus(t))
    return {
        n.id: tuple(g for g in n.gpus if g not in held.get(n.id, set())) for n in nodes if n.usable
    }


def matches(node: ClusterNode, constraints: Iterable[str]) -> bool:
    """True when the node satisfies every Swarm placement constraint (`attr ==|!= value`).

    Raises ValueError for a constraint Swarm would reject or that this module cannot
    evaluate, so an admin's typo stops a spawn with a reason instead of a wrong count.
    """
    for constraint in constraints:
        m = _CONSTRAINT.match(constraint)
        if not m:
            raise ValueError(
                f"{constraint!r} is not a placement constraint such as 'node.labels.gpu == h100'."
            )
        key, op, wanted = m.groups()
        actual = _attribute(node, key)
        if (actual == wanted) != (op == "=="):
            return False
    return True


def _attribute(node: ClusterNode, key: str) -> str | None:
    simple = {
        "node.id": node.id,
        "node.hostname": node.hostname,
        "node.role": node.role,
        "node.platform.os": node.os,
        "node.platform.arch": node.arch,
    }
    if key in simple:
        return simple[key]
    for prefix, labels in (("node.labels.", node.labels), ("engine.labels.", node.engine_labels)):
        if key.startswith(prefix) and len(key) > len(prefix):
            return labels.get(key[len(prefix) :])
    raise ValueError(f"Placement constraint attribute {key!r} is not one Swarm knows.")


@dataclass(frozen=True)
class Capacity:
    """GPUs on the nodes a profile may use."""

    nodes: int  # usable nodes matching the constraints
    total: int
    free: int
    largest_total: int  # most GPUs on one such node
    largest_free: int  # most free GPUs on one such node (a task's GPUs share a node)


def capacity(
    nodes: Sequence[ClusterNode], tasks: Iterable[Mapping], constraints: Iterable[str] = ()
) -> Capacity:
    constraints = list(constraints)
    eligible = [n for n in nodes if n.usable and matches(n, constraints)]
    free = free_gpus(eligible, tasks)
    return Capacity(
        nodes=len(eligible),
        total=sum(len(n.gpus) for n in eligible),
        free=sum(len(f) for f in free.values()),
        largest_total=max((len(n.gpus) for n in eligible), default=0),
        largest_free=max((len(f) for f in free.values()), default=0),
    )


def image_fit(
    needs: ImageNeeds | None, nodes: Sequence[ClusterNode], constraints: Iterable[str] = ()
) -> tuple[list[str], str | None]:
    """(the ids of the GPU nodes a profile may use that cannot run its image, the sentence
    when none of them can). A node that does not say its driver or cards is not judged."""
    constraints = list(constraints)
    eligible = [n for n in nodes if n.usable and n.gpus and matches(n, constraints)]
    reasons = {n.id: refusal(needs, n.driver, [n.compute_capability]) for n in eligible}
    unfit = sorted(i for i, reason in reasons.items() if reason)
    if not eligible or len(unfit) < len(eligible):
        return unfit, None
    if len(eligible) == 1:
        return unfit, reasons[eligible[0].id]
    first = eligible[0]
    return unfit, f"No GPU node of this cluster can run this image ({first.hostname}: " + (
        f"{reasons[first.id]})"
    )


class NoNodeFits(GpuAllocationError):
    """No node of the cluster can run this request now (or ever)."""


def check_fits(count: int, cap: Capacity) -> None:
    """Raise NoNodeFits, with a sentence for the user, when no node can take `count` GPUs now."""
    if count <= 0:
        return
    if cap.nodes == 0:
        raise NoNodeFits(
            "No node of the cluster may run this profile right now; "
            "pick another profile or tell your administrator."
        )
    if cap.largest_total < count:
        where = (
            "no node has GPUs"
            if cap.largest_total == 0
            else f"the largest node has {plural(cap.largest_total)}"
        )
        raise NoNodeFits(
            f"{plural(count)} requested, but {where} for this profile; "
            "pick fewer or the CPU profile."
        )
    if cap.largest_free < count:
        raise NoNodeFits(
            f"{plural(count)} requested, but no node has that many free right now "
            f"(at most {cap.largest_free} free on one node, {cap.free} in all); "
            "pick fewer, the CPU profile, or try again later."
        )


def service_gpu_count(service: Mapping) -> int:
    labels = ((service.get("Spec") or {}).get("Labels")) or {}
    try:
        return max(0, int(labels.get(GPU_COUNT_LABEL, "0")))
    except ValueError:
        return 0


def held_by_user(services: Iterable[Mapping], user: str, except_server: str = "") -> int:
    """GPUs the user's services reserve (quota), leaving out the server being (re)started."""
    total = 0
    for s in services:
        labels = (s.get("Spec") or {}).get("Labels") or {}
        if labels.get(USER_LABEL) == user and labels.get(SERVER_LABEL) != except_server:
            total += service_gpu_count(s)
    return total


def holdings(
    nodes: Sequence[ClusterNode], tasks: Iterable[Mapping], services: Iterable[Mapping]
) -> list[ClusterHolding]:
    """Who holds which GPU where: the cluster's GPU table (sorted by node, then GPU)."""
    by_id = {s["ID"]: s for s in services}
    names = {n.id: n.hostname for n in nodes}
    rows = []
    for t in tasks:
        service = by_id.get(t.get("ServiceID", ""))
        if service is None or not _holds(t):
            continue
        spec = service.get("Spec") or {}
        labels = spec.get("Labels") or {}
        if USER_LABEL not in labels:
            continue  # not a cudaspawner service
        for gpu in assigned_gpus(t):
            rows.append(
                ClusterHolding(
                    gpu=gpu,
                    node=names.get(t.get("NodeID", ""), t.get("NodeID", "")),
                    user=labels[USER_LABEL],
                    server=labels.get(SERVER_LABEL, labels[USER_LABEL]),
                    service=spec.get("Name", ""),
                    since=parse_since(labels[SINCE_LABEL]) if SINCE_LABEL in labels else None,
                )
            )
    return sorted(rows, key=lambda h: (h.node, h.gpu))


def pending_reason(task: Mapping) -> str:
    """Swarm's own words for why a task is not running ("no suitable node (...)")."""
    status = task.get("Status") or {}
    return (status.get("Err") or status.get("Message") or status.get("State") or "").strip()
