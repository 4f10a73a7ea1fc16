"""Which container an SSH session may enter.

The hub's REST API (`spawner.services.hub_api`, with the service's own token) says whether a user's
default server is running and which container the spawner made for it (the spawner's state,
`object_id`). The container is then used only if its labels name the same user and
server: a container this hub did not create for that user is never entered.
`choose_container` is that decision as a pure function.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..gpu.labels import SERVER_LABEL, USER_LABEL


@dataclass(frozen=True)
class Target:
    """The container a session runs in, and as whom."""

    container_id: str
    name: str
    user: str  # the container's user (uid:gid or name), never empty
    home: str
    env: dict[str, str]


class NoServer(Exception):
    """The user has no running server; the message tells them how to start one."""


def choose_container(
    user: str, user_model: Mapping, container_attrs: Mapping | None
) -> tuple[Target | None, str]:
    """(target, "") when `user`'s running default server is `container_attrs`, else (None, why)."""
    server = (user_model.get("servers") or {}).get("")
    if not server:
        return None, "no server"
    if not server.get("ready"):
        return None, "starting"
    if container_attrs is None:
        return None, "no container"
    labels = (container_attrs.get("Config") or {}).get("Labels") or {}
    if labels.get(USER_LABEL) != user or labels.get(SERVER_LABEL) != user:
        return None, "container labels name another user"
    if not (container_attrs.get("State") or {}).get("Running"):
        return None, "container not running"
    config = container_attrs.get("Config") or {}
    env = dict(e.split("=", 1) for e in config.get("Env") or [] if "=" in e)
    container_user = config.get("User") or ""
    if not container_user or container_user.split(":")[0] in ("0", "root"):
        # The spawner never runs a user as root by default; an SSH session must not either.
        return None, "container runs as root"
    home = env.get("HOME") or config.get("WorkingDir") or "/"
    return (
        Target(
            container_id=container_attrs["Id"],
            name=(container_attrs.get("Name") or "").lstrip("/"),
            user=container_user,
            home=home,
            env=env,
        ),
        "",
    )
