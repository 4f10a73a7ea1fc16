"""Container security settings as data.

Pure functions: given the admin's hardening choices and the image's configured user,
decide the user the container runs as and the Docker host-config entries that confine it.
Nothing here talks to Docker, so the rules are testable alone.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_UID_GID = "1000:100"


class RootUserRefused(ValueError):
    """The container would run as uid 0 and the admin has not allowed that."""


@dataclass(frozen=True)
class Hardening:
    """What confines a user container. Each field mirrors a spawner traitlet."""

    cap_drop: tuple[str, ...] = ("ALL",)
    cap_add: tuple[str, ...] = ()
    no_new_privileges: bool = True
    pids_limit: int | None = 4096
    shm_size: str | int | None = "2g"

    def host_config(self) -> dict:
        """Keyword arguments for docker-py's ``create_host_config``."""
        security_opt = ["no-new-privileges"] if self.no_new_privileges else []
        config: dict = {}
        if self.cap_drop:
            config["cap_drop"] = list(self.cap_drop)
        if self.cap_add:
            config["cap_add"] = list(self.cap_add)
        if security_opt:
            config["security_opt"] = security_opt
        if self.pids_limit:
            config["pids_limit"] = int(self.pids_limit)
        if self.shm_size:
            config["shm_size"] = self.shm_size
        return config


def _is_root(user: str) -> bool:
    """True when a Docker ``user`` string (``name``, ``uid`` or ``uid:gid``) means uid 0."""
    name = user.split(":", 1)[0].strip()
    return name in ("", "0", "root")


def resolve_container_user(configured: str, image_user: str, allow_root: bool) -> str:
    """The ``user`` a container is created with.

    ``configured`` wins when set. Otherwise the image's own user is kept when it is not
    root (images such as jupyter/docker-stacks ship a non-root user), and anything else
    falls back to ``1000:100``. A result meaning uid 0 is refused unless ``allow_root``.
    """
    if configured:
        user = configured
    elif image_user and not _is_root(image_user):
        user = image_user
    else:
        user = DEFAULT_UID_GID
    if _is_root(user) and not allow_root:
        raise RootUserRefused(
            f"Refusing to start a container as root (user {user!r}). Set "
            "CUDADockerSpawner.container_user to a non-root uid:gid, or set "
            "CUDADockerSpawner.allow_root = True if running as root is really intended."
        )
    return user


DOCKER_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock")


def docker_socket_mounts(volumes: dict) -> list[str]:
    """Host paths in a DockerSpawner `volumes` mapping that would hand over the engine.

    The Docker socket is root on the host: a user container must never get it, whatever
    a profile or the admin's volumes say.
    """
    return [
        str(src) for src in volumes if any(str(src).rstrip("/").endswith(s) for s in DOCKER_SOCKETS)
    ]
