"""CUDADockerSpawner: DockerSpawner with profiles, exclusive GPUs and hardened containers.

Thin glue. The decisions live in pure modules (``profiles``, ``gpus``, ``gpu_requests``,
``hardening``, ``labels``, ``errors``); this class reads traitlets, calls them, and does the
Docker I/O through DockerSpawner's off-loop ``self.docker(...)`` helper.
"""

from __future__ import annotations

import asyncio
import inspect
from concurrent.futures import ThreadPoolExecutor

import docker.errors
from dockerspawner import DockerSpawner
from tornado import web
from traitlets import (
    Any,
    Bool,
    CaselessStrEnum,
    Dict,
    Integer,
    List,
    TraitError,
    Unicode,
    Union,
    default,
    validate,
)

from . import errors
from .gpu_host import GpuHost
from .hardening import Hardening, RootUserRefused, docker_socket_mounts, resolve_container_user
from .internal_ssl import cert_archive, numeric_ids, pick_free_address
from .spawn_settings import SpawnSettings, render_options_form


class CUDADockerSpawner(DockerSpawner):
    """A DockerSpawner for GPU notebooks; see the README for the whole picture."""

    # --- hardening -------------------------------------------------------------------
    container_user = Unicode(
        "",
        config=True,
        help="""uid:gid (or user name) the container runs as.

        Empty (the default) keeps the image's own user when it is not root, and otherwise
        uses 1000:100. A value meaning uid 0 is refused unless `allow_root` is True.
        """,
    )
    allow_root = Bool(
        False,
        config=True,
        help="Allow containers to run as uid 0. Off by default: a root notebook user can "
        "do far more damage to the host through any kernel or runtime bug.",
    )
    cap_drop = List(
        Unicode(),
        default_value=["ALL"],
        config=True,
        help="Linux capabilities dropped from the container. A notebook needs none.",
    )
    cap_add = List(
        Unicode(),
        default_value=[],
        config=True,
        help="Capabilities given back after `cap_drop`, for admins who need one (e.g. SYS_PTRACE).",
    )
    no_new_privileges = Bool(
        True,
        config=True,
        help="Set `no-new-privileges`, so setuid binaries in the image cannot raise privileges.",
    )
    pids_limit = Integer(
        4096,
        allow_none=True,
        config=True,
        help="Maximum number of processes in the container (fork-bomb guard). None: no limit.",
    )
    shm_size = Union(
        [Unicode(), Integer()],
        default_value="2g",
        allow_none=True,
        config=True,
        help="Size of /dev/shm. PyTorch's DataLoader workers share tensors through it and "
        "fail with Docker's 64 MB default. A profile's `shm_size` overrides it.",
    )
    home_volume_name = Unicode(
        "cudaspawner-home-{username}",
        config=True,
        help="Name template of the per-user named volume that persists the home directory.",
    )
    home_mount_path = Unicode(
        "/home/jovyan",
        config=True,
        help="Where the per-user volume is mounted: the image user's home directory.",
    )
    ready_wait_timeout = Integer(
        60,
        config=True,
        help="Seconds start() watches for the server to listen before handing over to "
        "JupyterHub's slower, backing-off readiness check.",
    )
    docker_threads = Integer(
        8,
        config=True,
        help="Threads for blocking Docker calls. DockerSpawner uses one for the whole hub, "
        "which makes concurrent spawns wait in line for each other's Docker calls.",
    )

    # --- profiles and GPUs (validated in spawn_settings) ------------------------------
    profiles = Union(
        [List(Dict()), Any()],
        default_value=[],
        config=True,
        help="""Image profiles offered to users; see the README's profiles section.

        A list of dicts, or a callable (possibly async) taking the spawner and returning one,
        for per-user lists. Empty: one implicit profile from `image` with no GPUs.
        """,
    )

    options_form_template = Unicode(
        "",
        config=True,
        help="Path of a Jinja2 template replacing the default profile form "
        "(spawner/templates/profiles_form.html shows the variables it gets).",
    )
    gpu_inventory = Union(
        [Unicode(), List()],
        default_value="nvml",
        config=True,
        help="""The GPUs of the Docker host.

        "nvml" (default): ask NVML on the hub host (an empty inventory where there is no
        driver). Or a list, for a hub that runs in a container or talks to a remote engine:
        indices or UUIDs, or dicts such as {"id": "GPU-5f1c...", "index": 0, "name": "H100"}.
        An empty list means a CPU-only host: GPU choices are hidden.
        """,
    )
    gpu_request_style = CaselessStrEnum(
        ["device_requests", "runtime", "cdi"],
        default_value="device_requests",
        config=True,
        help="""How a container is given its GPUs.

        device_requests: Docker device requests (NVIDIA Container Toolkit, `--gpus`).
        runtime: `runtime="nvidia"` and NVIDIA_VISIBLE_DEVICES (nvidia-docker2).
        cdi: CDI device names `nvidia.com/gpu=<id>` (Docker 25+).
        In every style NVIDIA_VISIBLE_DEVICES is set explicitly (`void` without GPUs).
        """,
    )
    gpu_placement = CaselessStrEnum(
        ["pack", "spread"],
        default_value="pack",
        config=True,
        help="Which free GPUs a server gets: pack (lowest indices first, keeping large "
        "blocks free for multi-GPU requests) or spread (rotate across the GPUs).",
    )
    gpu_quota_per_user = Integer(
        None,
        allow_none=True,
        config=True,
        help="Most GPUs one user may hold at once across their servers. None: no limit.",
    )
    gpu_quota_per_group = Dict(
        config=True,
        help="Most GPUs a member of each group may hold at once, e.g. {'students': 1}. "
        "A user in several groups gets the most generous of them.",
    )

    @validate("profiles")
    def _validate_profiles(self, proposal):
        value = proposal.value
        if not callable(value) and value:
            from .profiles import ProfileConfigError, parse_profiles

            try:
                parse_profiles(list(value))
            except ProfileConfigError as e:
                raise TraitError(f"CUDADockerSpawner.profiles: {e}") from None
        return value

    # DockerSpawner's defaults that do not fit a multi-user GPU host.
    @default("move_certs_image")
    def _default_move_certs_image(self) -> str:
        # DockerSpawner's busybox must be pulled; the locally built base is always here.
        return "cudaspawner/debian:bookworm"

    @default("ssl_alt_names")
    def _default_ssl_alt_names(self):
        async def alt_names(spawner: CUDADockerSpawner) -> list[str]:
            # The hub and proxy reach the container at its planned address, so the
            # certificate must name that address (the container name is not resolvable
            # from a hub running on the host).
            return [f"DNS:{spawner.container_name}", f"IP:{await spawner._plan_address()}"]

        return alt_names

    @default("remove")
    def _default_remove(self) -> bool:
        # A new choice of image must take effect on the next start; state lives in the volume.
        return True

    @default("pull_policy")
    def _default_pull_policy(self) -> str:
        return "ifnotpresent"

    @property
    def executor(self) -> ThreadPoolExecutor:
        cls = CUDADockerSpawner
        if getattr(cls, "_cuda_executor", None) is None:
            cls._cuda_executor = ThreadPoolExecutor(self.docker_threads)
        return cls._cuda_executor

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._progress_events: list[dict] = []
        self._settings: SpawnSettings | None = None
        # The admin's values, before a profile changes them for one start.
        self._admin_image = self.image
        self._admin_limits = (self.mem_limit, self.cpu_limit)

    # --- the form and user options ----------------------------------------------------
    @default("options_form")
    def _default_options_form(self):
        return render_options_form

    @default("options_from_form")
    def _default_options_from_form(self):
        async def options_from_form(formdata: dict, spawner: CUDADockerSpawner) -> dict:
            from .form import options_from_form as parse
            from .profiles import UserOptionsError

            try:
                options = parse(formdata)
            except UserOptionsError as e:
                raise errors.user_error(400, str(e)) from None
            # Refuse now, before JupyterHub stores the options as the user's new default.
            await spawner._validated(options)
            return options

        return options_from_form

    # --- user options -----------------------------------------------------------------
    async def _run_apply_user_options(self, user_options: dict) -> None:
        # Validate before JupyterHub creates certificates or anything else for this spawn,
        # so a refused request leaves nothing behind. Then the admin's own hook, if any.
        self._settings = await self._validated(user_options)
        await super()._run_apply_user_options(user_options)

    async def _validated(self, user_options: dict) -> SpawnSettings:
        from .profiles import UserOptionsError

        try:
            return await SpawnSettings.for_spawner(self, user_options or {})
        except UserOptionsError as e:
            raise errors.user_error(400, str(e)) from None

    # --- life cycle -------------------------------------------------------------------
    def _progress(self, percent: int, message: str) -> None:
        self._progress_events.append({"progress": percent, "message": message})

    async def progress(self):
        """Spawn progress: GPU reservation, container creation, start."""
        sent = 0
        while True:
            while sent < len(self._progress_events):
                yield self._progress_events[sent]
                sent += 1
            if self._spawn_future is not None and self._spawn_future.done():
                break
            if not self._spawn_pending and sent:
                break
            await asyncio.sleep(0.2)

    async def start(self):
        self._progress_events = []
        if self._settings is None:  # start() called without the hub's option hook
            self._settings = await self._validated(self.user_options or {})
        settings = self._settings
        try:
            self._apply_settings(settings)
            await self._check_image(self.image)
            await settings.reserve_gpus(self)
            self._progress(40, "creating container")
            # progress for "starting" is emitted from start_object
            ip, port = await super().start()
            await self._wait_listening(ip, port)
            return ip, port
        except web.HTTPError:
            await self._cleanup_failed_start()
            raise
        except Exception as e:
            await self._cleanup_failed_start()
            if errors.is_engine_unreachable(e):
                raise errors.user_error(503, errors.ENGINE_DOWN) from None
            explained = errors.explain_start_failure(str(e))
            if explained:
                raise errors.user_error(400, explained) from None
            raise

    async def _wait_listening(self, ip: str, port: int) -> None:
        """Return as soon as the server accepts connections.

        JupyterHub then checks the server once and finds it up. Without this its check backs
        off exponentially (0.2, 0.6, 1.4, 3.0, 6.2 s ...), so a server that is ready at 3.1 s
        is seen at 6.2 s. A TCP connect every 50 ms costs the container nothing.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ready_wait_timeout
        next_poll = loop.time() + 1
        while loop.time() < deadline:
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), 1)
            except (OSError, asyncio.TimeoutError):
                await asyncio.sleep(0.05)
            else:
                writer.close()
                return
            if loop.time() > next_poll:  # don't wait for a container that died
                next_poll = loop.time() + 1
                if await self.poll() is not None:
                    return  # JupyterHub's own check reports the failure
        # Not listening yet: JupyterHub's own wait (http_timeout) takes over.

    def _apply_settings(self, settings: SpawnSettings) -> None:
        """Point this start at the chosen profile's image and limits."""
        profile = settings.profile
        self.image = profile.image or self._admin_image
        admin_mem, admin_cpu = self._admin_limits
        self.mem_limit = profile.mem_limit or admin_mem
        self.cpu_limit = profile.cpu_limit if profile.cpu_limit is not None else admin_cpu

    async def _check_image(self, image: str) -> None:
        """Pull as configured, turning "no such image" into a message for the user."""
        try:
            await self.pull_image(image)
            info = await self.docker("inspect_image", image)
        except docker.errors.ImageNotFound:
            raise errors.missing_image(image) from None
        except docker.errors.APIError as e:
            if e.status_code == 404 or "not found" in str(e).lower():
                raise errors.missing_image(image) from None
            raise
        self._image_info = info

    async def get_command(self):
        if self.cmd:
            return self.cmd + self.get_args()
        # The image was inspected a moment ago in _check_image: don't ask Docker again.
        info = getattr(self, "_image_info", None) or await self.docker("inspect_image", self.image)
        return info["Config"]["Cmd"] + self.get_args()

    def get_env(self) -> dict:
        env = super().get_env()
        if self._settings is not None:
            env.update(self._settings.environment())
        return env

    async def create_object(self):
        settings = self._settings
        image_user = (getattr(self, "_image_info", None) or {}).get("Config", {}).get("User", "")
        try:
            user = resolve_container_user(self.container_user, image_user, self.allow_root)
        except RootUserRefused as e:
            raise errors.user_error(500, str(e)) from None

        hardening = Hardening(
            cap_drop=tuple(self.cap_drop),
            cap_add=tuple(self.cap_add),
            no_new_privileges=self.no_new_privileges,
            pids_limit=self.pids_limit,
            shm_size=(settings.profile.shm_size if settings else None) or self.shm_size,
        )
        ours_host = hardening.host_config()
        ours_create: dict = {"user": user}
        if settings is not None:
            gpu = settings.container_gpu_settings()
            ours_host.update(gpu.host_config)
            ours_create.update(gpu.create_kwargs)
            ours_create["labels"] = settings.labels(self)

        if self._address:
            ours_create["networking_config"] = self.client.create_networking_config(
                {self.network_name: self.client.create_endpoint_config(ipv4_address=self._address)}
            )

        admin_host = await self._resolved(self.extra_host_config)
        admin_create = await self._resolved(self.extra_create_kwargs)
        saved = (self.extra_host_config, self.extra_create_kwargs, self.volumes)
        # DockerSpawner reads these traits inside create_object: hand it the merged values
        # for this one call. The admin's extras win over our defaults (explicit relaxing);
        # the GPU settings are ours alone, so a user never gets devices they were not given.
        self.extra_host_config = {**ours_host, **admin_host, **self._gpu_only(ours_host)}
        merged_create = {**ours_create, **admin_create}
        # Labels from both: ours carry the GPU assignment the hub rebuilds its table from.
        merged_create["labels"] = {
            **admin_create.get("labels", {}),
            **ours_create.get("labels", {}),
        }
        self.extra_create_kwargs = merged_create
        self.volumes = {**self._admin_volumes(), **self._profile_volumes()}
        sockets = docker_socket_mounts(self.volumes)
        try:
            if sockets:
                self.log.error(
                    "Refusing to mount the Docker socket into a user container: %s", sockets
                )
                raise errors.user_error(
                    500, "This server's configuration is unsafe; please tell your administrator."
                )
            return await super().create_object()
        finally:
            self.extra_host_config, self.extra_create_kwargs, self.volumes = saved

    @staticmethod
    def _gpu_only(host_config: dict) -> dict:
        return {k: v for k, v in host_config.items() if k in ("device_requests", "runtime")}

    async def _resolved(self, value):
        value = self._eval_if_callable(value)
        if inspect.isawaitable(value):
            value = await value
        return dict(value or {})

    def _admin_volumes(self) -> dict:
        volumes = dict(self.volumes)
        if self.home_volume_name and self.home_mount_path:
            volumes.setdefault(self.home_volume_name, self.home_mount_path)
        return volumes

    def _profile_volumes(self) -> dict:
        return dict(self._settings.profile.volumes) if self._settings else {}

    async def start_object(self):
        self._progress(70, "starting container")
        try:
            await super().start_object()
        except docker.errors.APIError as e:
            explained = errors.explain_start_failure(str(e))
            if explained:
                raise errors.user_error(400, explained) from None
            raise

    async def _cleanup_failed_start(self) -> None:
        """Remove whatever a failed start created and give its GPUs back."""
        self._forget_address()
        try:
            if self.object_id:
                await self.remove_object()
                self.object_id = ""
        except Exception as e:  # the engine may be the thing that failed
            self.log.warning("Could not remove the container of a failed start: %s", e)
        GpuHost.release_for(self.server_key)

    async def poll(self):
        try:
            status = await super().poll()
        except Exception as e:
            if errors.is_engine_unreachable(e):
                self.log.warning("Docker engine unreachable while polling %s", self._log_name)
                return None  # unknown: don't declare the server dead because the engine blinked
            raise
        if status is not None:
            # The container is gone or stopped behind the hub's back: free its GPUs.
            GpuHost.release_for(self.server_key)
        return status

    async def stop(self, now: bool = False):
        try:
            if self.object_id:
                await super().stop(now=now)
            else:
                self.clear_state()
        finally:
            self._forget_address()
            GpuHost.release_for(self.server_key)

    # --- internal TLS -------------------------------------------------------------------
    _planned: set[str] = set()  # addresses planned by this hub, not yet taken by a container
    _address_lock: asyncio.Lock | None = None
    _address: str = ""

    async def _plan_address(self) -> str:
        """Choose this container's address on its network before its certificate is made."""
        if self._address:
            return self._address
        cls = CUDADockerSpawner
        if cls._address_lock is None:
            cls._address_lock = asyncio.Lock()
        async with cls._address_lock:
            net = await self.docker("inspect_network", self.network_name)
            ipam = net["IPAM"]["Config"][0]
            used = [c["IPv4Address"] for c in (net.get("Containers") or {}).values()]
            self._address = pick_free_address(
                ipam["Subnet"], ipam["Gateway"], [*used, *cls._planned]
            )
            cls._planned.add(self._address)
        return self._address

    def _forget_address(self) -> None:
        CUDADockerSpawner._planned.discard(self._address)
        self._address = ""

    async def move_certs(self, paths: dict) -> dict:
        """Stage the hub-made certificates in the user's cert volume, key 0600, user-owned."""
        info = await self.docker("inspect_image", self._profile_image())
        user = resolve_container_user(
            self.container_user, info["Config"].get("User", ""), self.allow_root
        )
        ids = numeric_ids(user)
        if ids is None:
            raise errors.user_error(
                500, f"Internal TLS needs a numeric container_user (uid:gid), not {user!r}."
            )
        archive, in_container = cert_archive(paths, *ids)
        volume = self.format_volume_name(self.certs_volume_name, self)
        await self.docker("create_volume", volume)
        host_config = self.client.create_host_config(binds={volume: {"bind": "/certs"}})
        stager = await self.docker(
            "create_container", self.move_certs_image, volumes=["/certs"], host_config=host_config
        )
        try:
            await self.docker("put_archive", container=stager["Id"], path="/certs", data=archive)
        finally:
            await self.docker("remove_container", stager["Id"], force=True)
        return in_container

    def _profile_image(self) -> str:
        if self._settings is not None and self._settings.profile.image:
            return self._settings.profile.image
        return self.image

    async def get_ip_and_port(self):
        if self._address:
            return self._address, self.port
        return await super().get_ip_and_port()

    # --- state --------------------------------------------------------------------------
    def get_state(self) -> dict:
        state = super().get_state()
        if self._settings is not None and self.object_id:
            state["cudaspawner"] = self._settings.to_state()
        return state

    @property
    def server_key(self) -> str:
        """The allocator's key for this server: user name, plus the server name if named."""
        return f"{self.user.name}/{self.name}" if self.name else self.user.name
