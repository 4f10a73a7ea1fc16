"""CUDADockerSpawner: DockerSpawner with profiles, exclusive GPUs and hardened containers.

Thin glue, one direction: posted fields -> `option_hooks.form_options` -> JupyterHub's
`apply_user_options` -> `validate_user_options` (once) -> `prepare_start`, made once at
its first need, in three named steps: `reserve_gpus` (the host's GPU table),
`make_start_plan` (image inspected, address planned, `make_plan`: pure), `engine_start`
(`container_spec.docker_start`: the plan as DockerSpawner's traits). The hooks
(create_object, get_env, get_command, get_ip_and_port, ssl_alt_names, move_certs) read
that one `DockerStart`. Only this module and its mixin hold a spawner; the others take
and return data. Docker calls go through DockerSpawner's off-loop `self.docker(...)`.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

import docker.errors
from dockerspawner import DockerSpawner
from traitlets import default

from ..accounting.holds import EXITED, STOPPED
from ..engine import failures, foreign_objects, hub_identity
from ..gpu.allocator import Gpu, GpuAllocationError, GpuQuotaExceeded, plural
from ..gpu.engine_view import EngineReads, docker_reads
from ..gpu.host import GpuHost
from ..host.internal_ssl import (
    AddressPlanner,
    cert_archive,
    cert_owner,
    is_address_taken,
    stage_certs,
)
from ..planning.choice import Choice
from ..planning.plan import PlanRefused, StartPlan, image_facts, make_plan
from ..planning.site_config import SiteConfig
from ..services.hub_metrics import record_refusal, record_spawn, register_slice_metrics
from .account_volumes import AccountVolumes
from .container_spec import DockerStart, EngineStart, docker_start, made_from
from .gpu_line import HostPool, WaitsInLine
from .image_compat import ChecksImage
from .progress import Progress, wait_listening
from .usage_record import RecordsUsage
from .user_choice import UserChoice

register_slice_metrics(GpuHost.current_slices)  # /hub/metrics: the host's MIG slices


class CUDADockerSpawner(
    UserChoice, WaitsInLine, RecordsUsage, ChecksImage, AccountVolumes, SiteConfig, DockerSpawner
):
    """A DockerSpawner for GPU notebooks; see docs/ for the whole picture."""

    _inspect_own = "inspect_container"  # the Docker call that inspects what a server runs in

    @default("move_certs_image")
    def _default_move_certs_image(self) -> str:
        # DockerSpawner's busybox must be pulled; the locally built base is always here.
        return "cudaspawner/debian:bookworm"

    @default("ssl_alt_names")
    def _default_ssl_alt_names(self):
        async def alt_names(spawner: CUDADockerSpawner) -> list[str]:
            return list((await spawner.prepare_start()).alt_names)

        return alt_names

    @default("remove")
    def _default_remove(self) -> bool:
        # A new choice of image must take effect on the next start; state lives in the volume.
        return True

    @default("pull_policy")
    def _default_pull_policy(self) -> str:
        return "ifnotpresent"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._progress = Progress()
        self._choice: Choice | None = None
        self._start: EngineStart | None = None  # this start's, made once (prepare_start)
        # (the site's image, the image a start chose): `image` is set to the choice, as
        # DockerSpawner does, and must not become the next start's default.
        self._image_set: tuple[str, str] | None = None

    @property
    def server_key(self) -> str:
        """The allocator's key for this server: user name, plus the server name if named."""
        return f"{self.user.name}/{self.name}" if self.name else self.user.name

    @property
    def _engine(self) -> EngineReads:
        return docker_reads(self.docker, lambda: self.client, self.executor)

    # --- a start: GPUs, plan, engine; made once -----------------------------------------
    async def prepare_start(self) -> EngineStart:
        """This start's GPUs, plan and container, made at their first need (the server's
        certificate, or the container) and kept for the start's hooks."""
        if self._start is None:
            if self._choice is None:  # start() called without the hub's apply_user_options
                self._choice = await self.validated_choice(self.user_options)
            gpus = await self.reserve_gpus(self._choice)
            plan = await self.make_start_plan(self._choice, gpus)
            self._start = await self.engine_start(plan)
            # DockerSpawner pulls and creates `image`: the profile's, for this start only.
            self._image_set = (self._site_image(), plan.image)
            self.image = plan.image
        return self._start

    async def make_start_plan(self, choice: Choice, gpus: tuple[Gpu, ...]) -> StartPlan:
        """The plan (pure `make_plan`) from the choice, the GPUs and the inspected image."""
        image = choice.profile.image or self._site_image()
        facts = image_facts(image, await self._inspect_image(image))
        address = ""
        if self.internal_ssl:
            address = await AddressPlanner.shared().plan(
                self.server_key, lambda: self.docker("inspect_network", self.network_name)
            )
        since = datetime.now(timezone.utc).isoformat(timespec="seconds") if choice.gpus else ""
        try:
            return make_plan(
                choice,
                user_name=self.user.name,
                server_key=self.server_key,
                site=self.site_settings(),
                image=facts,
                gpus=gpus,
                since=since,
                address=address,
            )
        except PlanRefused as e:
            self.log.error("%s", e)
            raise failures.user_error(500, e.public) from None

    async def engine_start(self, plan: StartPlan) -> EngineStart:
        """The plan as DockerSpawner's container (the one place the Docker edge reads it)."""
        names: dict = {}
        if self.internal_ssl:  # the server's certificate names what the proxy connects to
            subdomains = self.user.settings.get("subdomain_host")
            names = {
                "container_name": self.container_name,
                "user_domain": self.user.domain if subdomains else "",
            }
        return docker_start(
            plan,
            admin_host=dict(await self._evaluated(self.extra_host_config) or {}),
            admin_create=dict(await self._evaluated(self.extra_create_kwargs) or {}),
            network=self.network_name,
            **names,
        )

    async def _inspect_image(self, image: str) -> dict:
        """Pull as configured and inspect, turning "no such image" into a sentence."""
        try:
            await self.pull_image(image)
            return await self.docker("inspect_image", image)
        except docker.errors.APIError as e:
            if failures.is_missing_image(e):
                record_refusal(
                    "image_missing", user=self.user.name, server=self.server_key, message=image
                )
                raise failures.missing_image(image) from None
            raise

    async def reserve_gpus(self, choice: Choice) -> tuple[Gpu, ...]:
        """The choice's GPUs from this host's table, or an HTTP 409 that says why not."""
        count = choice.gpus
        if count == 0:
            return ()
        await self._check_image_runs(choice.profile)  # before any GPU or place in line
        await self._check_budgets()  # over a hard budget: refused, never queued
        mig = choice.profile.mig
        host = await self.gpu_host()
        try:
            if mig:  # slices are given now or refused: the line hands out whole GPUs
                groups = self._group_names()
                gpus = await host.reserve(
                    self.server_key, self.user.name, groups, count, self._engine, mig=mig
                )
            else:
                gpus = await self._reserve_whole(choice, HostPool(host, self))
        except GpuAllocationError as e:
            reason = "gpu_quota" if isinstance(e, GpuQuotaExceeded) else "no_free_gpu"
            record_refusal(
                reason, user=self.user.name, server=self.server_key, gpus=count, message=str(e)
            )
            raise failures.user_error(409, str(e)) from None
        what = plural(len(gpus), f"MIG {mig} slice" if mig else "GPU")
        self._progress.add(20, f"reserving {what} ({', '.join(g.id for g in gpus)})")
        return gpus

    # --- life cycle ------------------------------------------------------------------------
    def progress(self):
        """Spawn progress: GPU reservation, container creation, start."""
        return self._progress.stream(
            lambda sent: (
                (self._spawn_future is not None and self._spawn_future.done())
                or (not self._spawn_pending and sent > 0)
            )
        )

    async def start(self):
        started = time.monotonic()
        if self._choice is None:  # started without the hub's apply_user_options
            self._progress = Progress()
        try:
            await self._refuse_foreign_container()  # before anything is reserved or made
            start = await self.prepare_start()
            await self._ensure_volumes(start.mounts)
            await self._drop_outdated_container(start.fingerprint)
            self._progress.add(40, "creating container")  # "starting": in start_object
            ip, port = await self._start_container()
            await wait_listening(ip, port, self.ready_wait_timeout, self._has_exited)
            record_spawn(
                start.profile,
                time.monotonic() - started,
                user=self.user.name,
                server=self.server_key,
                gpus=list(start.gpu_ids),
            )
            await self._record_start(start)
            return ip, port
        except Exception as e:
            await self._cleanup_failed_start()
            admin = failures.gpu_path_fault(str(e))
            if admin:
                self.log.error("%s could not start: %s (%s)", self._log_name, admin, e)
            explained = failures.start_failure(e)
            if getattr(explained, "jupyterhub_message", None) == failures.NO_GPU_RUNTIME:
                record_refusal("no_gpu_runtime", user=self.user.name, server=self.server_key)
            if explained is None or explained is e:
                raise
            raise explained from None
        finally:
            self._choice = self._start = None  # the next start makes its own

    async def _start_container(self, tries: int = 3) -> tuple[str, int]:
        """DockerSpawner's start; under internal TLS, at another address if another hub's
        container took the planned one first (hubs sharing a network plan independently)."""
        for attempt in range(tries):
            try:
                return await super().start()
            except docker.errors.APIError as e:
                address = self._start.address if self._start else ""
                if not address or not is_address_taken(e) or attempt == tries - 1:
                    raise
            self.log.warning(
                "Address %s on %s was taken by another container; planning another for %s",
                address,
                self.network_name,
                self._log_name,
            )
            if self.object_id:
                await self.remove_object()
                self.object_id = ""
            AddressPlanner.shared().forget(self.server_key, taken=True)
            self._start = None
            await self.prepare_start()
            # The certificate names the address: make it again for the new one.
            self.cert_paths = await self.move_certs(await self.create_certs())
        raise AssertionError("unreachable")

    async def _drop_outdated_container(self, fingerprint: str) -> None:
        """A kept container (`remove = False`) is restarted only if made from this plan."""
        existing = None if self.remove else await self.get_object()
        if existing and not made_from(existing, fingerprint):
            self.log.info("Recreating %s: its start plan changed", self.object_name)
            await self.remove_object()
            self.object_id = ""

    # --- ownership: only this hub's containers and volumes are touched -------------------
    async def get_object(self):
        """DockerSpawner's lookup by name, blind to containers this hub does not own.

        A container of that name made by another hub or by hand is never stopped, removed
        or restarted: `start` refuses it with a sentence (`_refuse_foreign_container`).
        """
        obj = await super().get_object()
        if obj and not hub_identity.is_ours((obj.get("Config") or {}).get("Labels"), self.hub_id):
            self.object_id = ""
            return None
        return obj

    async def _refuse_foreign_container(self) -> None:
        refusal = await foreign_objects.foreign_refusal(
            self.docker, self._inspect_own, self.object_name, self.hub_id, self.log
        )
        if refusal is not None:
            self.object_id = ""  # never remove it as "a failed start's container"
            raise refusal

    async def _has_exited(self) -> bool:
        return await self.poll() is not None

    async def get_command(self):
        return [*(await self.prepare_start()).command, *self.get_args()]

    def get_env(self) -> dict:
        env = super().get_env()
        if self._start is not None:
            env.update(self._start.environment)
        return env

    async def create_object(self):
        """DockerSpawner's create, given this start's container through the traits it reads."""
        start = await self.prepare_start()
        assert isinstance(start, DockerStart)
        saved = (self.extra_host_config, self.extra_create_kwargs, self.volumes)
        self.extra_host_config = start.host_config
        self.extra_create_kwargs = start.create_kwargs
        self.volumes = self.account_mounts(start.mounts)
        try:
            return await super().create_object()
        finally:
            self.extra_host_config, self.extra_create_kwargs, self.volumes = saved

    async def start_object(self):
        self._progress.add(70, "starting container")
        try:
            await super().start_object()
        except docker.errors.APIError as e:
            admin = failures.gpu_path_fault(str(e))
            if admin:
                self.log.error("%s could not start: %s (%s)", self._log_name, admin, e)
            explained = failures.start_failure(e)
            if explained is None:
                raise
            raise explained from None

    async def get_ip_and_port(self):
        if self._start is not None and self._start.address:
            return self._start.address, self.port
        return await super().get_ip_and_port()

    async def move_certs(self, paths: dict) -> dict:
        """Stage the hub-made certificates in the user's cert volume, key 0600, user-owned."""
        try:
            owner = cert_owner((await self.prepare_start()).user)
        except ValueError as e:
            raise failures.user_error(500, str(e)) from None
        archive, in_container = cert_archive(paths, *owner)
        volume = self.format_volume_name(self.certs_volume_name, self)
        # It holds only the certificates staged here at each start: one an earlier account
        # of this name left is made afresh, never handed over.
        await self._ensure_volume(volume, replace_earlier=True)
        binds = self.client.create_host_config(binds={volume: {"bind": "/certs"}})
        await stage_certs(self.docker, binds, self.move_certs_image, archive)
        return in_container

    def _release(self) -> None:
        """Give back what this server's start held: its GPUs and its planned address."""
        AddressPlanner.shared().forget(self.server_key)
        GpuHost.release_for(self.server_key)

    async def _cleanup_failed_start(self) -> None:
        """Remove whatever a failed start created and give its GPUs back."""
        self._release()
        try:
            if self.object_id:
                await self.remove_object()
                self.object_id = ""
        except Exception as e:  # the engine may be the thing that failed
            self.log.warning("Could not remove the container of a failed start: %s", e)

    async def poll(self):
        try:
            status = await super().poll()
        except Exception as e:
            if failures.is_engine_unreachable(e):
                self.log.warning("Docker engine unreachable while polling %s", self._log_name)
                return None  # unknown: don't declare the server dead because the engine blinked
            raise
        if status is not None:
            # The container is gone or stopped behind the hub's back: free its GPUs.
            GpuHost.release_for(self.server_key)
            await self._record_end(EXITED)
        return status

    def run_post_stop_hook(self):
        # JupyterHub runs it after every stop, also of a start still pending (its `stop` is
        # only called for a running server): a start waiting for GPUs leaves the line.
        self._stopped_while_waiting()
        return super().run_post_stop_hook()

    async def stop(self, now: bool = False):
        try:
            # get_object: only a container of this hub is stopped or removed.
            if self.object_id and await self.get_object() is not None:
                await super().stop(now=now)
            else:
                self.clear_state()
        finally:
            self._choice = self._start = None
            self._release()
            await self._record_end(STOPPED)
