"""CUDASwarmSpawner: the same profiles, form, hardening, labels and quotas on a Swarm cluster.

Thin glue on top of CUDADockerSpawner (everything up to the start plan is shared: the
form, the choice's validation, `prepare_start`, the image's inspection, `make_plan`) and
DockerSpawner's SwarmSpawner (services, tasks, poll, stop). What differs, and where:

- `reserve_gpus`: the hub checks the quota and that some node can take the request now
  (`gpu.cluster`) and reserves nothing itself; the plan carries the count, and the
  service reserves `NVIDIA-GPU=N`; Swarm picks node and devices. The GPU table is the
  cluster's (tasks' assigned resources), so a hub restart loses nothing. A start that may
  wait takes a place in the line for busy GPUs (`ClusterPool`: one line per set of
  placement constraints; a start fits when one node has its GPUs free).
- `engine_start`: `service_spec.swarm_start(plan, ...)`, once per start: plain data.
- The form's free GPUs: per profile, on the nodes each may use (`_form_gpus`); the
  image check is per node (`_image_refusal`): nodes that cannot run a profile's image are
  kept off by a constraint.
- A task still pending after `pending_timeout` is removed and the user told Swarm's reason.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from dockerspawner import SwarmSpawner
from traitlets import Dict, Integer, List, Tuple, Unicode, default

from ..docker_edge.spawner import CUDADockerSpawner
from ..engine import failures, hub_identity
from ..gpu.allocator import GpuAllocator, GpuQuotaExceeded, plural
from ..gpu.cluster import (
    Capacity,
    ClusterNode,
    NoNodeFits,
    capacity,
    check_fits,
    held_by_user,
    image_fit,
    nodes_from_api,
    pending_reason,
)
from ..gpu.waiting_line import HeldGpu
from ..planning.availability import ProfileAvailability
from ..planning.choice import Choice
from ..planning.plan import StartPlan
from ..planning.profiles import Profile
from .service_spec import SwarmStart, pick_port, published_ports, service_spec, swarm_start

_FAILED_STATES = ("failed", "rejected", "shutdown", "complete", "orphaned", "remove")


# Swarm hands out GPUs as generic resources of whole devices; MIG slices are not among them.
SWARM_NO_MIG = "MIG slices are given by a hub on a single Docker host, not on this Swarm cluster"


class ClusterGpuView:
    """The cluster's GPUs as the spawn form asks for them (`total`, `free_count`)."""

    def __init__(self, cap: Capacity | None) -> None:
        self.cap = cap

    @property
    def total(self) -> int:
        return self.cap.total if self.cap else 0

    async def free_count(self, _engine: object = None) -> int | None:
        return self.cap.free if self.cap else None  # None: unknown, nothing disabled


class ClusterPool:
    """The nodes a profile may use, as the line for busy GPUs waits for them.

    Free is the most free GPUs on one node (a task's GPUs share a node), less those of
    starts that took their turn and whose task Swarm has not placed yet (`claims`): so the
    next in line does not take the same GPUs meanwhile. The cluster keeps no holding times:
    the estimate says so rather than guess.
    """

    recent_holds: tuple[float, ...] = ()
    claims: dict[str, tuple[str, int]] = {}  # server key -> (pool, GPUs), this hub process

    def __init__(self, spawner: CUDASwarmSpawner, profile: str) -> None:
        self.spawner, self.profile = spawner, profile
        constraints = sorted(spawner._constraints(profile))
        self.name = "cluster" + (f": {', '.join(constraints)}" if constraints else "")
        self.total = 0

    async def capacity(self) -> Capacity:
        cap = await self.spawner._capacity(self.profile)
        self.total = cap.largest_total
        claimed = sum(n for pool, n in self.claims.values() if pool == self.name)
        return replace(cap, largest_free=max(0, cap.largest_free - claimed))

    async def free(self) -> int:
        return (await self.capacity()).largest_free

    async def take(self, choice: Choice) -> tuple | None:
        try:
            check_fits(choice.gpus, await self.capacity())
        except NoNodeFits:
            return None
        self.claims[self.spawner.server_key] = (self.name, choice.gpus)
        return ()  # Swarm picks the devices

    def held(self, reclaim_at) -> list[HeldGpu]:
        return []


class CUDASwarmSpawner(CUDADockerSpawner, SwarmSpawner):
    """CUDADockerSpawner's profiles and GPU rules, run as Swarm services (docs/swarm.md)."""

    _inspect_own = "inspect_service"  # a server is a service: another hub's is refused

    placement_constraints = List(
        Unicode(),
        config=True,
        help="""Swarm placement constraints for every server, e.g. ["node.role == worker"].""",
    )
    profile_constraints = Dict(
        key_trait=Unicode(),
        value_trait=List(Unicode()),
        config=True,
        help="""More placement constraints per profile slug, e.g.
        {"h100": ["node.labels.gpu == h100"]}: that profile's servers run only there, and
        the form's free GPUs for it are counted on those nodes.""",
    )
    pending_timeout = Integer(
        60,
        config=True,
        help="""Seconds a server's task may stay pending (no node can take it) before the
        service is removed and the user told Swarm's reason.""",
    )
    published_port_range = Tuple(
        Integer(),
        Integer(),
        default_value=(49200, 49999),
        config=True,
        help="""Host ports servers are published on (host mode, on the node that runs
        them): the hub and proxy reach a server at its node's address and this port.""",
    )

    @default("pull_policy")
    def _default_pull_policy(self) -> str:
        # The manager inspects the image for the plan; nodes pull it themselves.
        return "ifnotpresent"

    _create_lock: asyncio.Lock | None = None

    # GPU nodes whose driver or cards cannot run a profile's image, per profile slug: kept
    # off by constraints (`_image_refusal` renews them before each form and start).
    _unfit: dict[str, list[str]] = {}

    # --- the cluster, read ---------------------------------------------------------------
    def _constraints(self, profile: str) -> list[str]:
        keep_off = [f"node.id != {i}" for i in CUDASwarmSpawner._unfit.get(profile, [])]
        return [*self.placement_constraints, *self.profile_constraints.get(profile, []), *keep_off]

    async def _image_refusal(self, profile: Profile, probe_now: bool = False) -> str | None:
        """On a cluster each GPU node says its own driver and cards (`cluster.DRIVER_LABEL`,
        `CAPABILITY_LABEL`): the nodes that cannot run the image are kept off, and the
        profile is refused only when none of its nodes can."""
        if profile.max_gpus <= 0 or profile.mig:
            return None
        return await self._node_refusal(
            profile, nodes_from_api(await self.docker("nodes")), probe_now
        )

    async def _node_refusal(
        self, profile: Profile, nodes: list[ClusterNode], probe_now: bool = False
    ) -> str | None:
        """`_image_refusal` on nodes already read (the form reads them once)."""
        if profile.max_gpus <= 0 or profile.mig:
            return None
        if not any(n.driver or n.compute_capability for n in nodes):
            CUDASwarmSpawner._unfit.pop(profile.slug, None)
            return None  # no node says: nothing to check
        given = [*self.placement_constraints, *self.profile_constraints.get(profile.slug, [])]
        try:
            unfit, sentence = image_fit(await self._image_needs(profile, probe_now), nodes, given)
        except ValueError:  # the admin's constraint: `_capacity` says so
            return None
        CUDASwarmSpawner._unfit[profile.slug] = unfit
        return sentence

    async def _capacity(self, profile: str = "") -> Capacity:
        nodes = nodes_from_api(await self.docker("nodes"))
        tasks = await self.docker("tasks", filters={"desired-state": "running"})
        try:
            return capacity(nodes, tasks, self._constraints(profile))
        except ValueError as e:  # the admin's constraint: logged in full, a sentence for users
            self.log.error("CUDASwarmSpawner placement constraints: %s", e)
            raise failures.user_error(
                500, "The server placement is misconfigured; please tell your administrator."
            ) from None

    async def gpu_host(self) -> ClusterGpuView:  # type: ignore[override]
        """GPUs of the whole cluster for the form; None figures when it cannot be asked."""
        try:
            return ClusterGpuView(await self._capacity())
        except Exception as e:
            self.log.warning("Could not read the cluster's GPUs: %s", e)
            return ClusterGpuView(None)

    # --- the form: free GPUs per profile, on the nodes each may use ---------------------
    async def _form_gpus(self, visible: list[Profile]):
        """Each profile's free GPUs are the most free on one of its nodes that can run its
        image."""
        try:
            nodes = nodes_from_api(await self.docker("nodes"))
            # Renews the nodes kept off each profile, so the counts below leave them out.
            reasons = {p.slug: await self._node_refusal(p, nodes) for p in visible}
            tasks = await self.docker("tasks", filters={"desired-state": "running"})
            per_profile, total = {}, 0
            for p in visible:
                cap = capacity(nodes, tasks, self._constraints(p.slug))
                reason = SWARM_NO_MIG if p.mig else reasons[p.slug]
                per_profile[p.slug] = ProfileAvailability(
                    cap.largest_free, cap.largest_total, reason
                )
                total = max(total, cap.largest_total)
        except Exception as e:  # the form must open; figures unknown rather than wrong
            self.log.warning("Could not read the cluster's GPUs for the form: %s", e)
            return None, 1, None
        return None, total, per_profile

    # --- ownership: only this hub's services are touched --------------------------------
    async def get_object(self):
        """The service of this name, blind to one this hub did not create (its labels)."""
        obj = await SwarmSpawner.get_object(self)
        if obj and not hub_identity.is_ours((obj.get("Spec") or {}).get("Labels"), self.hub_id):
            self.object_id = ""
            return None
        return obj

    # --- GPUs: checked here, assigned by Swarm --------------------------------------------
    async def reserve_gpus(self, choice: Choice) -> tuple:
        """Quota and fit; the devices are Swarm's choice, so none are reserved here."""
        count = choice.gpus
        if count == 0:
            return ()
        if choice.profile.mig:
            raise failures.user_error(409, SWARM_NO_MIG)
        await self._check_image_runs(choice.profile)  # and keeps the unfit nodes off
        await self._check_budgets()  # over a hard budget: refused, never queued
        services = await self.docker("services")
        quota = GpuAllocator(
            [], user_quota=self.gpu_quota_per_user, group_quotas=self.gpu_quota_per_group
        ).quota_for(self.user.name, self._group_names())
        ours = [
            s
            for s in services
            if hub_identity.is_ours((s.get("Spec") or {}).get("Labels"), self.hub_id)
        ]
        held = held_by_user(ours, self.user.name, except_server=self.server_key)
        pool = ClusterPool(self, choice.profile.slug)
        waits = self.gpu_line and choice.wait
        try:
            if quota is not None and held + count > quota:
                raise GpuQuotaExceeded(count, held, quota)
            cap = await pool.capacity()
            if waits:  # a wait no node could ever end is refused now
                check_fits(count, replace(cap, largest_free=cap.largest_total))
            got = await self._line_reserve(choice, pool) if self.gpu_line else None
            if got is None:  # nobody waits ahead: the cluster decides now
                try:
                    check_fits(count, cap)
                except NoNodeFits:
                    if not waits:
                        raise
                    await self._wait_in_line(choice, pool)
        except (GpuQuotaExceeded, NoNodeFits) as e:
            raise failures.user_error(409, str(e)) from None
        self._progress.add(20, f"asking the cluster for {plural(count)}")
        return ()

    # --- the service ---------------------------------------------------------------------
    async def engine_start(self, plan: StartPlan) -> SwarmStart:
        """The plan as a service (the one place the Swarm edge reads it)."""
        # Volume names are templates ("cudaspawner-home-{username}"), filled as DockerSpawner does.
        plan = replace(
            plan, mounts={self.format_volume_name(k, self): v for k, v in plan.mounts.items()}
        )
        return swarm_start(
            plan,
            constraints=self._constraints(plan.profile),
            network=self.network_name,
            port=self.port,
        )

    async def create_object(self):
        """Create this start's service (one creation at a time: ports are picked)."""
        start = await self.prepare_start()
        assert isinstance(start, SwarmStart)
        if CUDASwarmSpawner._create_lock is None:
            CUDASwarmSpawner._create_lock = asyncio.Lock()
        async with CUDASwarmSpawner._create_lock:
            used = published_ports(await self.docker("services"))
            try:
                published = pick_port(used, *self.published_port_range)
            except ValueError as e:
                raise failures.user_error(503, f"{e} Try again later.") from None
            spec = service_spec(
                start,
                name=self.service_name,
                command=await self.get_command(),
                env=self.get_env(),
                published_port=published,
            )
            service = await self.docker("create_service", **spec)
        # The task appears a moment after the service; start_object reads it.
        for _ in range(120):
            if await self.docker("tasks", filters={"service": self.service_name}):
                break
            await asyncio.sleep(0.25)
        return service

    async def start(self):
        if self.internal_ssl:
            raise failures.user_error(
                500, "Internal TLS is not supported on a Swarm cluster; tell your administrator."
            )
        try:
            return await super().start()
        finally:
            # Placed (or failed): the cluster's own counts say the rest.
            ClusterPool.claims.pop(self.server_key, None)

    async def start_object(self):
        """Wait for the task to run; a task pending past `pending_timeout` is refused."""
        self._progress.add(70, "waiting for the cluster to start the server")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.pending_timeout
        failed_since = None
        while True:
            task = await self.get_task()
            if task is None:
                raise failures.user_error(500, "The cluster removed your server before it started.")
            state = (task.get("Status") or {}).get("State", "").lower()
            if state == "running":
                return
            reason = pending_reason(task)
            if state in _FAILED_STATES:
                # Swarm replaces a rejected task (restart policy); fail only when none came.
                failed_since = failed_since or loop.time()
                if loop.time() - failed_since > 8:
                    raise failures.user_error(
                        500, f"The cluster could not start your server: {reason}."
                    )
            else:
                failed_since = None
            if state == "pending" and loop.time() > deadline:
                raise failures.user_error(
                    503,
                    f"No node of the cluster could take your server within "
                    f"{self.pending_timeout} s ({reason}); pick fewer GPUs or try again later.",
                )
            await asyncio.sleep(0.5)

    async def get_ip_and_port(self):
        """The node running the task, and the port published there (host mode)."""
        task = await self.get_task()
        node = await self.docker("inspect_node", task["NodeID"])
        service = await self.get_object()
        for port in service["Spec"]["EndpointSpec"]["Ports"]:
            if port.get("TargetPort") == self.port:
                return node["Status"]["Addr"], port["PublishedPort"]
        raise RuntimeError(f"Service {self.service_name} publishes no port {self.port}")
