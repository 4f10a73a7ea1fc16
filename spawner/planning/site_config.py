"""The admin's knobs of a GPU notebook spawner, as traitlets, and the data made from them.

A mixin: traits, and readers that turn them into what the spawner uses (`site_settings`
for the start plan, `gpu_host` for the hub's GPU table, `executor` for Docker calls).
`CUDADockerSpawner` inherits it, so `c.CUDADockerSpawner.<name>` sets them; a cluster
spawner can reuse the same knobs.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from traitlets import (
    Any,
    Bool,
    CaselessStrEnum,
    Dict,
    Float,
    HasTraits,
    Integer,
    List,
    TraitError,
    Unicode,
    Union,
    default,
    validate,
)

from ..accounts.usernames import HOME_VOLUME_TEMPLATE
from ..engine.hub_identity import data_directory, hub_identity, valid_hub_id
from ..gpu.host import GpuHost
from ..gpu.line_store import LINE_FILE
from .hardening import Hardening
from .plan import SiteSettings
from .profiles import ProfileConfigError, parse_profiles


class SiteConfig(HasTraits):
    """Hardening, profiles and GPU settings shared by cudaspawner's spawners."""

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
        HOME_VOLUME_TEMPLATE,
        config=True,
        help="Name template of the per-user named volume that persists the home directory.",
    )
    home_mount_path = Unicode(
        "/home/jovyan",
        config=True,
        help="Where the per-user volume is mounted: the image user's home directory.",
    )
    ready_wait_timeout = Integer(
        20,
        config=True,
        help="Seconds start() watches for the server to listen before handing over to "
        "JupyterHub's slower, backing-off readiness check. Servers are usually up in a few "
        "seconds; a short watch keeps a server that never listens from holding start() "
        "for the whole start_timeout.",
    )
    docker_threads = Integer(
        8,
        config=True,
        help="Threads for blocking Docker calls. DockerSpawner uses one for the whole hub, "
        "which makes concurrent spawns wait in line for each other's Docker calls.",
    )

    ssh_key_store = Unicode(
        "",
        help="""The SSH gateway's key store (set by configure_ssh): a deleted account's keys
        are removed from it, so a later account of the same name cannot log in with them.""",
    ).tag(config=True)

    hub_id = Unicode(
        config=True,
        help="""This deployment's identity on the Docker engine.

        Every container and volume the hub creates carries it as the label
        `org.cudaspawner.hub`, and the hub stops, removes or reuses only objects that carry
        it: other hubs, the test suite and an admin's own containers on the same engine are
        never touched. Default: an id generated once and kept in the file `hub-id` beside
        the hub's SQLite database (the data directory), else in the working directory.
        Letters, digits, '.', '_' and '-'. Changing it disowns the running servers.
        """,
    )

    def _data_directory(self) -> Path:
        """The hub's data directory: beside its SQLite database, else the working one."""
        try:
            db_url = str(self.config.JupyterHub.get("db_url", ""))
        except AttributeError:  # no config loaded (a spawner made by hand)
            db_url = ""
        return data_directory(db_url, os.getcwd())

    @default("hub_id")
    def _default_hub_id(self) -> str:
        return hub_identity(self._data_directory())

    @validate("hub_id")
    def _validate_hub_id(self, proposal):
        if not valid_hub_id(proposal.value):
            raise TraitError(
                f"CUDADockerSpawner.hub_id {proposal.value!r} must be 1-63 letters, digits, "
                "'.', '_' or '-', starting with a letter or digit."
            )
        return proposal.value

    # --- profiles and GPUs -----------------------------------------------------------
    profiles = Union(
        [List(Dict()), Any()],
        default_value=[],
        config=True,
        help="""Image profiles offered to users; see docs/profiles.md.

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
        indices or UUIDs, or dicts such as {"id": "GPU-5f1c...", "index": 0, "name": "H100",
        "compute_capability": "9.0"} (the capability lets the hub refuse an image whose
        PyTorch has no kernels for the card). A GPU in MIG mode lists its slices under
        "mig": [{"id": "MIG-...", "profile": "1g.18gb", "memory_mib": 18176}, ...] (NVML
        finds them by itself). An empty list means a CPU-only host: GPU choices are hidden.
        "simulated-nvml:<file.json>" reads a SIMULATED host (tests only; see
        spawner/gpu/simulated_nvml.py).
        """,
    )
    gpu_driver_version = Unicode(
        "",
        config=True,
        help="""The host's NVIDIA driver version, e.g. "550.54.15", for a listed inventory
        (with "nvml" the hub asks NVML). A GPU profile whose image needs a newer driver is
        shown unavailable, with the reason. Empty: not checked.""",
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
    mig_slices_per_server = Integer(
        1,
        config=True,
        help="""Most MIG slices one server may hold. CUDA shows a process one MIG device
        only, so a second slice helps only code that starts one process per slice; raise
        this where your users do that. A profile asking for more is refused (400).""",
    )
    gpu_line = Bool(
        True,
        config=True,
        help="""The line for busy GPUs: a GPU start that finds its GPUs taken may wait in line
        ("Wait for a GPU" on the form, "wait": true in the REST API) and starts by itself
        when its turn comes and its GPUs free. False: such a start is refused (409).""",
    )
    gpu_line_max_wait = Float(
        8 * 3600.0,
        config=True,
        help="Seconds a place in the line for GPUs is kept (the user may close the browser) "
        "before it expires with a sentence.",
    )
    gpu_line_group_shares = Dict(
        value_trait=Integer(min=0),
        config=True,
        help="""Optional per-group shares of the GPUs, for the line's order: {group: GPUs}.
        A waiter all of whose groups with a share hold more GPUs than their share goes behind
        the waiters of groups that hold less (then, within each, the order of joining).
        What a group holds is the operations service's last look. Empty: one line in the
        order of joining.""",
    )
    gpu_line_file = Unicode(
        config=True,
        help="The SQLite file that keeps the line for GPUs. Default: gpu-line.sqlite beside "
        "the hub's database (the data directory).",
    )

    @default("gpu_line_file")
    def _default_gpu_line_file(self) -> str:
        return str(self._data_directory() / LINE_FILE)

    @validate("profiles")
    def _validate_profiles(self, proposal):
        value = proposal.value
        if not callable(value) and value:
            try:
                parse_profiles(list(value))
            except ProfileConfigError as e:
                raise TraitError(f"CUDADockerSpawner.profiles: {e}") from None
        return value

    def site_settings(self) -> SiteSettings:
        """These settings as data, with the spawner's own `mem_limit`, `cpu_limit`,
        `volumes` and `cmd` (JupyterHub's and DockerSpawner's traits)."""
        return SiteSettings(
            container_user=self.container_user,
            allow_root=self.allow_root,
            hardening=Hardening(
                cap_drop=tuple(self.cap_drop),
                cap_add=tuple(self.cap_add),
                no_new_privileges=self.no_new_privileges,
                pids_limit=self.pids_limit,
                shm_size=self.shm_size,
            ),
            mem_limit=self.mem_limit,
            cpu_limit=self.cpu_limit,
            home_volume=self.home_volume_name,
            home_path=self.home_mount_path,
            volumes=dict(self.volumes or {}),
            gpu_request_style=self.gpu_request_style,
            cmd=tuple(self.cmd or ()),
            hub_id=self.hub_id,
        )

    async def gpu_host(self) -> GpuHost:
        """The hub's GPU table, made from these settings on first use."""
        return await GpuHost.shared(
            self.gpu_inventory,
            placement=self.gpu_placement,
            user_quota=self.gpu_quota_per_user,
            group_quotas=self.gpu_quota_per_group,
            log=getattr(self, "log", None),
            hub_id=self.hub_id,
        )

    _shared_executor: ThreadPoolExecutor | None = None
    _client_lock = threading.Lock()

    @property
    def client(self):
        """DockerSpawner's one Docker client, made by one thread only. DockerSpawner makes
        it on first use without a lock, which is safe with its single Docker thread but not
        with `docker_threads`: threads racing at a hub's start each made a client, and the
        ones replaced closed their connections under the others (seen: the hub crashed on a
        restart with four servers to poll)."""
        with SiteConfig._client_lock:
            return super().client

    @property
    def executor(self) -> ThreadPoolExecutor:
        """Threads for blocking Docker calls, shared by the hub's spawners (`docker_threads`)."""
        if SiteConfig._shared_executor is None:
            SiteConfig._shared_executor = ThreadPoolExecutor(self.docker_threads)
        return SiteConfig._shared_executor
